"""Pure rules: money and points math, tiers, accrual, redemption, expiry lots."""
