"""cnvrg datasets: versioned folders of files that data tasks give the tasks after them (``/data/<name>``)."""
