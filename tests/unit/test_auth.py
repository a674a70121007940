"""The SESSION_SETUP authenticator: full SPNEGO/NTLMv2 logons by pyspnego's and impacket's clients."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import spnego
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from impacket import ntlm as impacket_ntlm
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp, TypesMech

from netsession.groups import ADMINISTRATORS, GUESTS, SERVER_OPERATORS, USERS
from netsession.server.accounts import AccountStore, nt_hash
from netsession.wire.smb2.auth import (
    GUEST_ACCOUNT_NAME,
    AuthenticationFailed,
    Identity,
    NtlmAuthContext,
    NtlmAuthenticator,
)
from netsession.wire.spnego import (
    MS_KERBEROS_OID,
    NTLMSSP_OID,
    NegState,
    NegTokenInit,
    NegTokenResp,
    decode_token,
    encode_mech_type_list,
    encode_neg_token_init,
    encode_neg_token_resp,
)

PASSWORD = "Passw0rd!"
IMPACKET_NTLM = TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AccountStore]:
    with AccountStore(tmp_path / "accounts.sqlite3") as s:
        s.add_user("Alice", nt_hash(PASSWORD), groups=(ADMINISTRATORS,))
        s.add_user("bob", nt_hash("bobpw"), groups=(USERS, SERVER_OPERATORS))
        s.add_user("visitor", nt_hash("visitpw"), groups=(GUESTS,))
        yield s


MakeAuth = Callable[..., NtlmAuthenticator]


@pytest.fixture
def make_auth(store: AccountStore) -> MakeAuth:
    def make(**kwargs: object) -> NtlmAuthenticator:
        kwargs.setdefault("clock", time.time)
        return NtlmAuthenticator(store, server_name="FS1", entropy=os.urandom, **kwargs)  # type: ignore[arg-type]

    return make


# ------------------------------------------------------------------------------------- drivers


def pyspnego_logon(
    auth: NtlmAuthenticator, user: str, password: str, *, protocol: str = "negotiate", hint: bool = False
) -> tuple[NtlmAuthContext, object]:
    """Run pyspnego's client against a fresh context until the server says complete."""
    client = spnego.client(user, password, hostname="fs1", protocol=protocol)
    ctx = auth.new_context()
    token = client.step(auth.initial_token()) if hint else client.step()
    while True:
        step = ctx.step(token)
        reply = client.step(step.out_token) if step.out_token else None
        if step.complete:
            return ctx, client
        assert reply is not None
        token = reply


def impacket_first(ctx: NtlmAuthContext, domain: str, *, signing: bool, raw: bool, v2: bool = True):  # type: ignore[no-untyped-def]
    t1 = impacket_ntlm.getNTLMSSPType1("WS", domain, signing, use_ntlmv2=v2)
    if raw:
        return t1, ctx.step(t1.getData()).out_token
    blob = SPNEGO_NegTokenInit()
    blob["MechTypes"] = [IMPACKET_NTLM]
    blob["MechToken"] = t1.getData()
    return t1, SPNEGO_NegTokenResp(ctx.step(blob.getData()).out_token)["ResponseToken"]


def impacket_last(t1, challenge: bytes, user: str, password: str, domain: str, *, raw: bool, v2: bool = True):  # type: ignore[no-untyped-def]
    t3, key = impacket_ntlm.getNTLMSSPType3(t1, challenge, user, password, domain, use_ntlmv2=v2)
    if raw:
        return t3.getData(), key
    resp = SPNEGO_NegTokenResp()
    resp["ResponseToken"] = t3.getData()
    return resp.getData(), key


def impacket_logon(
    auth: NtlmAuthenticator,
    user: str,
    password: str,
    domain: str = "",
    *,
    signing: bool = True,
    raw: bool = False,
    v2: bool = True,
) -> tuple[NtlmAuthContext, bytes, bytes]:
    ctx = auth.new_context()
    t1, challenge = impacket_first(ctx, domain, signing=signing, raw=raw, v2=v2)
    token, key = impacket_last(t1, challenge, user, password, domain, raw=raw, v2=v2)
    step = ctx.step(token)
    assert step.complete
    return ctx, step.out_token, key


# ------------------------------------------------------------------------------------ success


def test_initial_token_is_neg_token_init2_offering_ntlm(make_auth: MakeAuth) -> None:
    token = decode_token(make_auth().initial_token())
    assert isinstance(token, NegTokenInit) and token.mech_types == (NTLMSSP_OID,)
    assert token.hint_name == "not_defined_in_RFC4178@please_ignore"


@pytest.mark.parametrize("hint", [False, True], ids=["client-first", "after-negotiate-hint"])
def test_pyspnego_negotiate_logon_same_session_key(make_auth: MakeAuth, hint: bool) -> None:
    ctx, client = pyspnego_logon(make_auth(), "alice", PASSWORD, hint=hint)
    assert client.complete  # type: ignore[attr-defined]  # it checked our mechListMIC
    assert ctx.complete and len(ctx.session_key) == 16
    assert ctx.session_key == client.session_key  # type: ignore[attr-defined]
    assert ctx.identity == Identity(
        "Alice",
        "FS1",
        frozenset({ADMINISTRATORS}),
        client_user="alice",
        client_domain="",
        workstation=ctx.identity.workstation,
    )
    assert ctx.identity.principal == "FS1\\Alice"


def test_pyspnego_bare_ntlm_logon(make_auth: MakeAuth) -> None:
    ctx, client = pyspnego_logon(make_auth(), "bob", "bobpw", protocol="ntlm")
    assert ctx.session_key == client.session_key  # type: ignore[attr-defined]
    assert ctx.identity.groups == frozenset({USERS, SERVER_OPERATORS})


@pytest.mark.parametrize("signing", [True, False])
@pytest.mark.parametrize("raw", [False, True], ids=["spnego", "bare-ntlm"])
def test_impacket_logon_same_session_key(make_auth: MakeAuth, signing: bool, raw: bool) -> None:
    ctx, final, key = impacket_logon(make_auth(), "alice", PASSWORD, "WORKGROUP", signing=signing, raw=raw)
    assert ctx.session_key == key
    assert ctx.identity.user == "Alice" and not ctx.identity.is_guest
    if raw:
        assert final == b""
    else:
        # impacket sends no NTLM MIC and no mechListMIC: none is required, none is sent back.
        assert decode_token(final) == NegTokenResp(NegState.ACCEPT_COMPLETED)


# What real clients put in the AUTHENTICATE_MESSAGE DomainName (measured against this acceptor):
# smbclient/rpcclient send their smb.conf workgroup ("WORKGROUP"), "FS1" for -U 'FS1\\alice', "." for
# -U '.\\alice', or -W's value; impacket sends what it is given ("" by default); pyspnego and smbprotocol
# send "" unless the user is written DOMAIN\\user.
DOMAINS = ["", "WORKGROUP", "FS1", "fs1", ".", "OTHERDOM", "fs1.example.com"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_any_domain_authenticates_impacket(make_auth: MakeAuth, domain: str) -> None:
    ctx, _, key = impacket_logon(make_auth(), "alice", PASSWORD, domain)
    assert ctx.session_key == key and ctx.identity.client_domain == domain and ctx.identity.domain == "FS1"


@pytest.mark.parametrize("domain", [d for d in DOMAINS if d])
def test_any_domain_authenticates_pyspnego(make_auth: MakeAuth, domain: str) -> None:
    ctx, client = pyspnego_logon(make_auth(), f"{domain}\\ALICE", PASSWORD)
    assert ctx.session_key == client.session_key  # type: ignore[attr-defined]
    assert ctx.identity.client_domain == domain and ctx.identity.client_user == "ALICE"


def test_empty_first_token_gets_the_init2_and_the_logon_continues(make_auth: MakeAuth) -> None:
    auth = make_auth()
    ctx = auth.new_context()
    first = ctx.step(b"")
    assert first == first.__class__(auth.initial_token(), False)
    client = spnego.client("alice", PASSWORD, hostname="fs1", protocol="negotiate")
    step = ctx.step(client.step(first.out_token))
    step = ctx.step(client.step(step.out_token))
    client.step(step.out_token)
    assert step.complete and ctx.session_key == client.session_key


# -------------------------------------------------------------------------------------- refusals


def test_wrong_password_fails(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="does not match"):
        pyspnego_logon(make_auth(), "alice", "wrong")
    with pytest.raises(AuthenticationFailed, match="does not match"):
        impacket_logon(make_auth(), "alice", "wrong")


def test_wrong_password_fails_even_with_guest_allowed(make_auth: MakeAuth) -> None:
    # MS-NLMP 3.2.5.1.2: only an account that does not exist falls back to Guest.
    with pytest.raises(AuthenticationFailed):
        impacket_logon(make_auth(allow_guest=True), "alice", "wrong")


def test_unknown_user_fails_without_guest(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="no account 'mallory'"):
        impacket_logon(make_auth(), "mallory", "x")


def test_ntlmv1_fails(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="NTLMv2 is required"):
        impacket_logon(make_auth(), "alice", PASSWORD, v2=False)


def test_context_is_finished_after_failure_and_after_success(make_auth: MakeAuth) -> None:
    auth = make_auth()
    ctx = auth.new_context()
    t1, challenge = impacket_first(ctx, "", signing=True, raw=False)
    token, _ = impacket_last(t1, challenge, "alice", "wrong", "", raw=False)
    with pytest.raises(AuthenticationFailed):
        ctx.step(token)
    with pytest.raises(AuthenticationFailed, match="already finished"):
        ctx.step(token)
    done, _, _ = impacket_logon(auth, "alice", PASSWORD)
    with pytest.raises(AuthenticationFailed, match="already finished"):
        done.step(b"")


def test_identity_before_completion_is_an_error(make_auth: MakeAuth) -> None:
    ctx = make_auth().new_context()
    with pytest.raises(RuntimeError):
        ctx.identity  # noqa: B018
    with pytest.raises(RuntimeError):
        ctx.session_key  # noqa: B018


# -------------------------------------------------------------------- the store changes mid-logon


def test_user_deleted_between_legs_fails(make_auth: MakeAuth, store: AccountStore) -> None:
    ctx = make_auth().new_context()
    t1, challenge = impacket_first(ctx, "", signing=True, raw=False)
    store.delete_user("alice")
    token, _ = impacket_last(t1, challenge, "alice", PASSWORD, "", raw=False)
    with pytest.raises(AuthenticationFailed, match="no account"):
        ctx.step(token)


def test_user_deleted_between_legs_is_a_guest_when_allowed(make_auth: MakeAuth, store: AccountStore) -> None:
    ctx = make_auth(allow_guest=True).new_context()
    t1, challenge = impacket_first(ctx, "", signing=True, raw=False)
    store.delete_user("alice")
    token, _ = impacket_last(t1, challenge, "alice", PASSWORD, "", raw=False)
    assert ctx.step(token).complete and ctx.identity.is_guest


def test_user_added_between_legs_succeeds(make_auth: MakeAuth, store: AccountStore) -> None:
    ctx = make_auth().new_context()
    t1, challenge = impacket_first(ctx, "", signing=True, raw=False)
    store.add_user("carol", nt_hash("carolpw"), groups=(USERS,))
    token, key = impacket_last(t1, challenge, "carol", "carolpw", "", raw=False)
    assert ctx.step(token).complete and ctx.session_key == key and ctx.identity.user == "carol"


def test_password_changed_by_another_process_applies_to_the_next_logon(
    make_auth: MakeAuth, store: AccountStore
) -> None:
    auth = make_auth()
    with AccountStore(store.path) as admin:  # a second connection, as `netsession user passwd` would open
        admin.set_password("alice", "n3w")
    with pytest.raises(AuthenticationFailed):
        impacket_logon(auth, "alice", PASSWORD)
    ctx, _, key = impacket_logon(auth, "alice", "n3w")
    assert ctx.session_key == key


def test_groups_come_from_the_store_at_logon(make_auth: MakeAuth, store: AccountStore) -> None:
    auth = make_auth()
    assert impacket_logon(auth, "bob", "bobpw")[0].identity.groups == frozenset({USERS, SERVER_OPERATORS})
    store.set_groups("bob", [ADMINISTRATORS])
    assert impacket_logon(auth, "bob", "bobpw")[0].identity.groups == frozenset({ADMINISTRATORS})


# ------------------------------------------------------------------------------ guest, anonymous


def _is_plain_accept_completed(token: bytes) -> bool:
    return decode_token(token) == NegTokenResp(NegState.ACCEPT_COMPLETED)


def test_unknown_user_is_guest_when_allowed(make_auth: MakeAuth) -> None:
    ctx, final, _ = impacket_logon(make_auth(allow_guest=True), "mallory", "x", "WORKGROUP")
    assert ctx.identity == Identity(
        GUEST_ACCOUNT_NAME,
        "FS1",
        frozenset({GUESTS}),
        is_guest=True,
        client_user="mallory",
        client_domain="WORKGROUP",
        workstation="WS",
    )
    # MS-NLMP 3.2.5.1.2 GuestSession: SessionBaseKey Z(16); no session security, so no mechListMIC.
    assert ctx.session_key == bytes(16) and _is_plain_accept_completed(final)


def test_pyspnego_client_accepts_a_guest_completion(make_auth: MakeAuth) -> None:
    # pyspnego sent a mechListMIC we cannot check; the completion without ours is accepted by it.
    ctx, client = pyspnego_logon(make_auth(allow_guest=True), "mallory", "x")
    assert ctx.identity.is_guest and client.complete  # type: ignore[attr-defined]


@pytest.mark.parametrize("allow", [False, True])
def test_explicit_guest_logon(make_auth: MakeAuth, allow: bool) -> None:
    # smbclient -U guest% : the Guest account, empty password, not in the store.
    if not allow:
        with pytest.raises(AuthenticationFailed):
            impacket_logon(make_auth(allow_guest=allow), "Guest", "")
        return
    ctx, _, _ = impacket_logon(make_auth(allow_guest=allow), "Guest", "")
    assert ctx.identity.is_guest and ctx.identity.user == GUEST_ACCOUNT_NAME


def test_member_of_guests_needs_guest_allowed(make_auth: MakeAuth) -> None:
    # MS-SMB2 note <293>: a member of BUILTIN\Guests is a guest.
    with pytest.raises(AuthenticationFailed, match="guest"):
        impacket_logon(make_auth(), "visitor", "visitpw")
    ctx, _, key = impacket_logon(make_auth(allow_guest=True), "visitor", "visitpw")
    assert ctx.identity.is_guest and ctx.identity.user == "visitor" and ctx.session_key == key


def test_member_of_guests_with_wrong_password_fails(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="does not match"):
        impacket_logon(make_auth(allow_guest=True), "visitor", "nope")


@pytest.mark.parametrize("raw", [False, True], ids=["spnego", "bare-ntlm"])
def test_anonymous_refused_by_default(make_auth: MakeAuth, raw: bool) -> None:
    with pytest.raises(AuthenticationFailed, match="anonymous"):
        impacket_logon(make_auth(allow_guest=True), "", "", raw=raw)


@pytest.mark.parametrize("raw", [False, True], ids=["spnego", "bare-ntlm"])
def test_anonymous_allowed(make_auth: MakeAuth, raw: bool) -> None:
    # impacket's anonymous AUTHENTICATE_MESSAGE: empty user, empty NT response, LM response Z(1).
    ctx, final, _ = impacket_logon(make_auth(allow_anonymous=True), "", "", raw=raw)
    assert ctx.identity == Identity("", "", frozenset(), is_anonymous=True, workstation="WS")
    assert ctx.identity.principal == ""
    assert ctx.session_key == bytes(16)
    assert final == b"" if raw else _is_plain_accept_completed(final)


# ---------------------------------------------------------------------------- SPNEGO mechListMIC


def _pyspnego_until_authenticate(auth: NtlmAuthenticator) -> tuple[NtlmAuthContext, NegTokenResp]:
    client = spnego.client("alice", PASSWORD, hostname="fs1", protocol="negotiate")
    ctx = auth.new_context()
    step = ctx.step(client.step())
    final = decode_token(client.step(step.out_token))
    assert isinstance(final, NegTokenResp) and final.mech_list_mic is not None
    return ctx, final


def test_missing_mech_list_mic_fails_when_the_ntlm_mic_is_present(make_auth: MakeAuth) -> None:
    # MS-SPNG note <8>: with an NTLM MIC in AUTHENTICATE_MESSAGE, mechListMIC is mandatory.
    ctx, final = _pyspnego_until_authenticate(make_auth())
    with pytest.raises(AuthenticationFailed, match="mechListMIC is missing"):
        ctx.step(encode_neg_token_resp(final.neg_state, response_token=final.response_token))


def test_wrong_mech_list_mic_fails(make_auth: MakeAuth) -> None:
    ctx, final = _pyspnego_until_authenticate(make_auth())
    assert final.mech_list_mic is not None
    bad = final.mech_list_mic[:-1] + bytes((final.mech_list_mic[-1] ^ 1,))
    with pytest.raises(AuthenticationFailed, match="mechListMIC is wrong"):
        ctx.step(
            encode_neg_token_resp(final.neg_state, response_token=final.response_token, mech_list_mic=bad)
        )


def test_ntlm_not_first_choice_asks_for_mic_and_drops_the_optimistic_token(make_auth: MakeAuth) -> None:
    # RFC 4178 5: Kerberos first with an optimistic Kerberos token; we choose NTLM, say request-mic,
    # ignore the token, and then require and return the mechListMIC over the client's list.
    mechs = [MS_KERBEROS_OID, NTLMSSP_OID]
    ctx = make_auth().new_context()
    first = decode_token(ctx.step(encode_neg_token_init(mechs, mech_token=b"\x60\x02\x05\x00")).out_token)
    assert first == NegTokenResp(NegState.REQUEST_MIC, NTLMSSP_OID, None, None)
    client = spnego.client("alice", PASSWORD, hostname="fs1", protocol="ntlm")
    second = decode_token(ctx.step(encode_neg_token_resp(response_token=client.step())).out_token)
    assert isinstance(second, NegTokenResp) and second.neg_state is NegState.ACCEPT_INCOMPLETE
    assert second.supported_mech is None and second.response_token is not None  # supportedMech only once
    authenticate = client.step(second.response_token)
    mech_list = encode_mech_type_list(mechs)
    last = ctx.step(encode_neg_token_resp(response_token=authenticate, mech_list_mic=client.sign(mech_list)))
    final = decode_token(last.out_token)
    assert last.complete and isinstance(final, NegTokenResp) and final.neg_state is NegState.ACCEPT_COMPLETED
    assert final.mech_list_mic is not None
    client.verify(mech_list, final.mech_list_mic)  # raises if our MIC is wrong
    assert ctx.session_key == client.session_key


def test_ntlm_not_first_choice_without_mic_fails(make_auth: MakeAuth) -> None:
    ctx = make_auth().new_context()
    ctx.step(encode_neg_token_init([MS_KERBEROS_OID, NTLMSSP_OID]))
    t1 = impacket_ntlm.getNTLMSSPType1("WS", "", True)
    challenge = decode_token(ctx.step(encode_neg_token_resp(response_token=t1.getData())).out_token)
    assert isinstance(challenge, NegTokenResp) and challenge.response_token is not None
    t3, _ = impacket_ntlm.getNTLMSSPType3(t1, challenge.response_token, "alice", PASSWORD, "")
    with pytest.raises(AuthenticationFailed, match="mechListMIC is missing"):
        ctx.step(encode_neg_token_resp(response_token=t3.getData()))


# ------------------------------------------------------------------------------------ bad tokens


def test_no_common_mechanism_fails(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="no mechanism in common"):
        make_auth().new_context().step(encode_neg_token_init([MS_KERBEROS_OID], mech_token=b"x"))


def test_neg_token_resp_first_fails(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="must start with NegTokenInit"):
        make_auth().new_context().step(encode_neg_token_resp(NegState.ACCEPT_INCOMPLETE, response_token=b"x"))


def test_client_reject_fails(make_auth: MakeAuth) -> None:
    ctx = make_auth().new_context()
    ctx.step(spnego.client("alice", PASSWORD, hostname="fs1").step())
    with pytest.raises(AuthenticationFailed, match="rejected"):
        ctx.step(encode_neg_token_resp(NegState.REJECT))


def test_authenticate_instead_of_negotiate_fails(make_auth: MakeAuth) -> None:
    with pytest.raises(AuthenticationFailed, match="NEGOTIATE_MESSAGE"):
        make_auth().new_context().step(b"NTLMSSP\x00\x03\x00\x00\x00" + bytes(60))


def test_response_older_than_max_lifetime_fails(make_auth: MakeAuth) -> None:
    # The clock jumps 37 hours between CHALLENGE (whose timestamp the client echoes) and AUTHENTICATE.
    times = iter([1_700_000_000.0, 1_700_000_000.0 + 37 * 3600])
    with pytest.raises(AuthenticationFailed, match="MaxLifetime"):
        impacket_logon(make_auth(clock=lambda: next(times)), "alice", PASSWORD)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzz_first_token_only_fails_cleanly(make_auth: MakeAuth, data: bytes) -> None:
    try:
        make_auth().new_context().step(data)
    except AuthenticationFailed:
        pass


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.booleans())
def test_fuzz_authenticate_leg_only_fails_cleanly(make_auth: MakeAuth, data: bytes, wrap: bool) -> None:
    ctx = make_auth(allow_guest=True, allow_anonymous=True).new_context()
    impacket_first(ctx, "", signing=True, raw=False)
    token = encode_neg_token_resp(response_token=b"NTLMSSP\x00\x03\x00\x00\x00" + data) if wrap else data
    try:
        ctx.step(token)
    except AuthenticationFailed:
        pass
