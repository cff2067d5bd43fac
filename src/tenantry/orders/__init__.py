"""Orders: a product at its price of the moment, a status machine with its history, and tags."""
