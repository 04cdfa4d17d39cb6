"""Money: prices and costs in exact integers, the in-memory book of balances and reservations, and
the settlement that turns one finished generation into a ledger entry and a generation record."""
