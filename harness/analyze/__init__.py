"""From votes to tables: the vote table of studies (`vote_table`) and the vote-trained preference proxy (`proxy`)."""
