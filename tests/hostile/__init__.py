"""A corpus of hostile model files, built by code so every case is readable and reproducible.

Each builder writes a file that a careless loader would act on: run code, read outside its
folder, crash on a bad index or exhaust memory. Tests load each one through shipyard's real
loaders (load, serve, import, batch) and check it is refused without side effects.
"""
