from tenantry.auth.tokens import (
    TENANT_TOKEN_PREFIX,
    TOKEN_LENGTH,
    generate_token,
    is_well_formed,
    token_digest,
)

PEPPER = "p" * 40


def test_generated_token_is_well_formed_and_stored_only_as_digest() -> None:
    issued = generate_token(PEPPER)
    assert issued.token.startswith(TENANT_TOKEN_PREFIX)
    assert len(issued.token) == TOKEN_LENGTH
    assert is_well_formed(issued.token)
    assert issued.digest == token_digest(issued.token, PEPPER)
    assert len(issued.digest) == 32
    assert issued.display_prefix == issued.token[:8]
    assert issued.last_four == issued.token[-4:]
    assert issued.token not in repr(issued.digest)


def test_tokens_are_unique() -> None:
    assert len({generate_token(PEPPER).token for _ in range(1000)}) == 1000


def test_any_single_character_change_breaks_the_checksum() -> None:
    token = generate_token(PEPPER).token
    body_start = len(TENANT_TOKEN_PREFIX)
    for position in range(body_start, len(token)):
        replacement = "A" if token[position] != "A" else "B"
        tampered = token[:position] + replacement + token[position + 1 :]
        assert not is_well_formed(tampered), position


def test_malformed_tokens_are_refused() -> None:
    token = generate_token(PEPPER).token
    for bad in [
        "",
        "tnt_",
        token[:-1],
        token + "a",
        "ghp_" + token[4:],
        token.replace("tnt_", "TNT_"),
        token[:10] + "!" + token[11:],
    ]:
        assert not is_well_formed(bad)


def test_digest_depends_on_pepper() -> None:
    token = generate_token(PEPPER).token
    assert token_digest(token, PEPPER) != token_digest(token, "q" * 40)
