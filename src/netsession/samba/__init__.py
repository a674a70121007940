"""netsession as the srvsvc of a running smbd (``netsession samba-bridge``).

smbd hands every named-pipe open to ``<external_rpc_pipe:socket_dir>/np/<pipe>``; the bridge answers
srvsvc there from Samba's live sessions (:mod:`.state`: smbd's TDBs and the kernel's TCP state, joined;
:mod:`.feed`: rows of the shared :class:`~netsession.table.SessionTable`) and forwards every other pipe to
samba-dcerpcd (:mod:`.bridge`). The hand-over is :mod:`.npa`; smbd's records :mod:`.smbxsrv`, in Samba's
NDR flavour (:mod:`.ndr`); reading TDB files :mod:`.tdb`; ending one session :mod:`.messaging`.
"""
