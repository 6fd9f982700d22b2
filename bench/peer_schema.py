"""The peer's tables (bench/peer_pos.py): the shapes and indexes of the product's."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_api_keys (
    digest varchar(64) PRIMARY KEY,
    merchant_id varchar(32) NOT NULL,
    scope varchar(16) NOT NULL,
    revoked_at timestamptz
);
CREATE TABLE IF NOT EXISTS peer_customers (
    id varchar(32) PRIMARY KEY,
    merchant_id varchar(32) NOT NULL,
    phone varchar(20) NOT NULL,
    available_cp bigint NOT NULL DEFAULT 0,
    lifetime_spend_minor bigint NOT NULL DEFAULT 0,
    purchase_count integer NOT NULL DEFAULT 0,
    last_purchase_at timestamptz,
    created_at timestamptz NOT NULL,
    UNIQUE (merchant_id, phone)
);
CREATE TABLE IF NOT EXISTS peer_codes (
    id varchar(32) PRIMARY KEY,
    merchant_id varchar(32) NOT NULL,
    kind varchar(8) NOT NULL,
    code varchar(64) NOT NULL,
    UNIQUE (merchant_id, kind, code)
);
CREATE TABLE IF NOT EXISTS peer_purchases (
    id varchar(32) PRIMARY KEY,
    merchant_id varchar(32) NOT NULL,
    receipt_id varchar(128) NOT NULL,
    customer_id varchar(32) REFERENCES peer_customers (id),
    store_id varchar(32) REFERENCES peer_codes (id),
    cashier_id varchar(32) REFERENCES peer_codes (id),
    occurred_at timestamptz NOT NULL,
    total_minor bigint NOT NULL,
    discount_minor bigint NOT NULL,
    redeemed_cp bigint NOT NULL,
    accrued_cp bigint NOT NULL,
    request_digest varchar(64) NOT NULL,
    response json NOT NULL,
    UNIQUE (merchant_id, receipt_id)
);
CREATE INDEX IF NOT EXISTS peer_purchases_customer ON peer_purchases (customer_id, occurred_at);
CREATE TABLE IF NOT EXISTS peer_purchase_lines (
    id varchar(32) PRIMARY KEY,
    purchase_id varchar(32) NOT NULL REFERENCES peer_purchases (id),
    line_id varchar(64) NOT NULL,
    amount_minor bigint NOT NULL,
    discount_minor bigint NOT NULL,
    redeemed_cp bigint NOT NULL,
    accrued_cp bigint NOT NULL,
    UNIQUE (purchase_id, line_id)
);
CREATE TABLE IF NOT EXISTS peer_ledger (
    id varchar(32) PRIMARY KEY,
    merchant_id varchar(32) NOT NULL,
    customer_id varchar(32) NOT NULL REFERENCES peer_customers (id),
    kind varchar(24) NOT NULL,
    amount_cp bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    available_at timestamptz,
    expires_at timestamptz,
    remaining_cp bigint,
    purchase_id varchar(32) REFERENCES peer_purchases (id)
);
CREATE INDEX IF NOT EXISTS peer_ledger_lots ON peer_ledger (customer_id, remaining_cp);
CREATE INDEX IF NOT EXISTS peer_ledger_time ON peer_ledger (customer_id, occurred_at, id);
CREATE INDEX IF NOT EXISTS peer_ledger_purchase ON peer_ledger (purchase_id);
CREATE TABLE IF NOT EXISTS peer_lot_allocations (
    id bigserial PRIMARY KEY,
    customer_id varchar(32) NOT NULL REFERENCES peer_customers (id),
    entry_id varchar(32) NOT NULL REFERENCES peer_ledger (id),
    lot_id varchar(32) NOT NULL REFERENCES peer_ledger (id),
    amount_cp bigint NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS peer_alloc_customer ON peer_lot_allocations (customer_id);
CREATE INDEX IF NOT EXISTS peer_alloc_entry ON peer_lot_allocations (entry_id);
CREATE INDEX IF NOT EXISTS peer_alloc_lot ON peer_lot_allocations (lot_id);
CREATE TABLE IF NOT EXISTS peer_outbox (
    id bigserial PRIMARY KEY,
    merchant_id varchar(32) NOT NULL,
    customer_id varchar(32) REFERENCES peer_customers (id),
    type varchar(48) NOT NULL,
    payload json NOT NULL,
    occurred_at timestamptz NOT NULL
);
"""

