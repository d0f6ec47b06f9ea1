"""The people Timbel knows: the users table's one check of who may act and the admin
operations that manage users (`users.py`), and the users file that `timbel users import`
reads (`users_file.py`).
"""
