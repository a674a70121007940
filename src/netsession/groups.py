"""The local groups a netsession server knows, by their Windows names (MS-DTYP 2.4.2.4).

They are the BUILTIN aliases of a Windows server. The account store holds memberships in them; the
authenticator reports them in a logon's identity; the session table's access policy asks whether a caller
is in ADMINISTRATORS or SERVER_OPERATORS (MS-SRVS notes <52>-<55>); a member of GUESTS logs on as a guest
(MS-SMB2 note <293>).
"""

from __future__ import annotations

# MS-DTYP 2.4.2.4: BUILTIN_ADMINISTRATORS S-1-5-32-544, BUILTIN_USERS -545, BUILTIN_GUESTS -546,
# SERVER_OPERATORS -549.
ADMINISTRATORS = "Administrators"
SERVER_OPERATORS = "Server Operators"
USERS = "Users"
GUESTS = "Guests"

BUILTIN_GROUPS: tuple[str, ...] = (ADMINISTRATORS, SERVER_OPERATORS, USERS, GUESTS)

# The well-known SID of each group, for logs and for callers that speak SIDs.
GROUP_SIDS: dict[str, str] = {
    ADMINISTRATORS: "S-1-5-32-544",
    USERS: "S-1-5-32-545",
    GUESTS: "S-1-5-32-546",
    SERVER_OPERATORS: "S-1-5-32-549",
}
