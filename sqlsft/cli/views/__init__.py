"""Every Rich table and progress view: stages return data, these render it (one file per stage)."""
