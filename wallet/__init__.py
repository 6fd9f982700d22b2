"""Apple and Google Wallet cards; arrives with step 9."""
