"""fastnn.data: a small DataLoader and the digits data set."""
