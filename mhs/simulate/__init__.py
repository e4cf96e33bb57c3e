"""``mhs simulate``: every role, real traffic between instances, and an honest summary."""
