"""The account as a whole: data export and erasure, across the features that hold its data."""
