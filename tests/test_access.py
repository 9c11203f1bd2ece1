"""The access rules as a table: each role against each action, and the line a refusal reads."""

from __future__ import annotations

import pytest

from kaos.errors import Forbidden, InputError
from kaos.server.access import (
    Action,
    Caller,
    Ownership,
    Role,
    allows,
    check,
    may_share,
    may_unshare,
    role_of,
)

TEAM = Ownership("x", "alice", {"bob": Role.WRITER, "carol": Role.READER})
ALLOWED = {  # user -> the actions they may take on alice's workspace x
    "alice": {Action.READ, Action.WRITE, Action.MANAGE},
    "bob": {Action.READ, Action.WRITE},
    "carol": {Action.READ},
    "dave": set(),
}


@pytest.mark.parametrize("user", ALLOWED)
@pytest.mark.parametrize("action", list(Action))
def test_each_role_may_do_what_the_ones_below_may_and_no_more(user, action):
    assert allows(Caller(user), TEAM, action) is (action in ALLOWED[user])


@pytest.mark.parametrize("action", list(Action))
def test_admins_and_the_local_user_without_tokens_may_do_everything(action):
    assert allows(Caller("root", admin=True), TEAM, action)
    assert allows(Caller("root", admin=True), Ownership("old", None), action)


def test_a_workspace_without_owner_is_for_admins_and_those_it_is_shared_with():
    old = Ownership("old", None, {"bob": Role.READER})
    assert role_of(Caller("bob"), old) is Role.READER
    assert role_of(Caller("anyone"), old) is Role.NONE
    with pytest.raises(Forbidden) as refused:
        check(Caller("anyone"), old, Action.READ)
    assert refused.value.message == "workspace 'old' has no owner: it is not shared with anyone"
    assert refused.value.fix.startswith("ask an admin to share it")


def test_a_refusal_names_the_owner_and_the_command_that_grants_the_missing_role():
    with pytest.raises(Forbidden) as refused:
        check(Caller("dave"), TEAM, Action.READ)
    assert str(refused.value) == (
        "workspace 'x' belongs to alice: it is not shared with dave "
        "(ask alice to share it: kaos workspace share -n x -u dave --role reader)"
    )
    with pytest.raises(Forbidden) as refused:
        check(Caller("carol"), TEAM, Action.WRITE)
    assert str(refused.value) == (
        "workspace 'x' belongs to alice: carol may only read it "
        "(ask alice to share it: kaos workspace share -n x -u carol --role writer)"
    )
    with pytest.raises(Forbidden) as refused:
        check(Caller("bob"), TEAM, Action.MANAGE)
    assert str(refused.value) == (
        "workspace 'x' belongs to alice: only its owner or an admin may share, unshare "
        "or delete it (ask alice)"
    )
    assert refused.value.http_status == 403


def test_only_reader_and_writer_can_be_shared_and_never_with_the_owner():
    assert Role.shared("reader") is Role.READER and Role.shared("writer") is Role.WRITER
    for bad in ("owner", "admin", "READER", ""):
        with pytest.raises(InputError, match="use --role reader or --role writer"):
            Role.shared(bad)
    with pytest.raises(InputError, match="alice owns workspace 'x' already"):
        may_share(Caller("alice"), TEAM, "alice")
    with pytest.raises(Forbidden):
        may_share(Caller("bob"), TEAM, "dave")
    may_share(Caller("root", admin=True), TEAM, "dave")


def test_the_owner_cannot_be_unshared_and_is_told_so():
    for caller in (Caller("alice"), Caller("root", admin=True)):
        with pytest.raises(InputError) as refused:
            may_unshare(caller, TEAM, "alice")
        assert str(refused.value) == (
            "alice owns workspace 'x': only the roles it was shared with can be taken back "
            "(see them with 'kaos workspace info -n x')"
        )
    with pytest.raises(Forbidden):
        may_unshare(Caller("bob"), TEAM, "alice")
    may_unshare(Caller("alice"), TEAM, "carol")
