"""Decoys and a lab in `netsession serve`: synthetic sessions (:mod:`.spec`, :mod:`.sessions`), listener
personalities (:mod:`.personality`), the control channel (:mod:`.control`), metrics (:mod:`.metrics`).

Every synthetic row is a row of the server's one session table, behind the same srvsvc rules as SMB
sessions; a personality is a policy the srvsvc service consults for one listener.
"""
