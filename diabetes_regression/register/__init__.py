"""Registration of a promoted candidate."""
