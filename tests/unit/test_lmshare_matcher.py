r"""lmshare.matcher: the client-side filter with the filters normalised once must keep exactly the records
lmshare.matches keeps (win32net.NetSessionEnum and NetSessionGetInfo filter a whole answer with it)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netsession.lmshare import matcher, matches
from netsession.records import SESSION_INFO_0, SESSION_INFO_10, SessionInfo

CNAMES = ["\\\\10.0.0.5", "10.0.0.5", "\\\\FS1", "fs1", "::1", "\\\\[::1]", "\\\\::1", "fe80::1%eth0", "",
          None]
USERS = ["alice", "ALICE", "Alice", "bob", "", None]

cnames = st.one_of(st.sampled_from(CNAMES), st.text(max_size=12))
users = st.one_of(st.sampled_from(USERS), st.text(max_size=8))
records = st.one_of(
    st.builds(SESSION_INFO_10, cnames, users, st.just(1), st.just(2)),
    st.builds(SESSION_INFO_0, cnames),
)


@settings(max_examples=400)
@given(st.lists(records, max_size=8), cnames, users)
def test_matcher_keeps_what_matches_keeps(
    batch: list[SessionInfo], client: str | None, user: str | None
) -> None:
    match = matcher(client, user)
    assert [match(r) for r in batch] == [matches(r, client, user) for r in batch]


def test_matcher_client_filter_with_or_without_unc_prefix_and_case() -> None:
    record = SESSION_INFO_10("\\\\FS1", "alice", 1, 2)
    assert matcher("fs1", None)(record)
    assert matcher("\\\\fs1", None)(record)
    assert not matcher("\\\\fs2", None)(record)


def test_matcher_ipv6_cname_is_compared_in_brackets() -> None:
    assert matcher("::1", None)(SESSION_INFO_10("\\\\[::1]", "alice", 1, 2))
    assert matcher("\\\\[::1]", None)(SESSION_INFO_10("::1", "alice", 1, 2))


def test_matcher_user_filter_is_case_insensitive_and_ignored_at_level_0() -> None:
    assert matcher(None, "ALICE")(SESSION_INFO_10("\\\\fs1", "alice", 1, 2))
    assert not matcher(None, "bob")(SESSION_INFO_10("\\\\fs1", "alice", 1, 2))
    assert matcher(None, "bob")(SESSION_INFO_0("\\\\fs1"))


def test_matcher_record_without_cname_never_matches_a_client_filter() -> None:
    assert not matcher("fs1", None)(SESSION_INFO_10(None, "alice", 1, 2))
    assert matcher(None, None)(SESSION_INFO_10(None, "alice", 1, 2))


def test_matcher_same_cname_twice_gives_the_same_answer() -> None:
    # The per-cname memo must not leak one record's answer into another's with a different user.
    match = matcher("fs1", "alice")
    assert match(SESSION_INFO_10("\\\\fs1", "alice", 1, 2))
    assert not match(SESSION_INFO_10("\\\\fs1", "bob", 1, 2))
    assert match(SESSION_INFO_10("\\\\fs1", "Alice", 1, 2))
