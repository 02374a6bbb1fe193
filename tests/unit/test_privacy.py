"""The address vault: pseudonyms are keyed and stable, sealed addresses open only for the owner."""

import pytest

from chalicelib.errors import ConfigurationError
from chalicelib.privacy import AddressVault


def test_pseudonym_is_stable_case_insensitive_and_keyed():
    vault = AddressVault(b"secret one")
    assert vault.pseudonym("Alice@Example.com") == vault.pseudonym("alice@example.com ")
    assert vault.pseudonym("alice@example.com") != AddressVault(b"secret two").pseudonym(
        "alice@example.com"
    )
    assert len(vault.pseudonym("alice@example.com")) == 32
    assert "alice" not in vault.pseudonym("alice@example.com")


def test_sealed_address_round_trips_and_hides_the_address():
    vault = AddressVault(b"secret")
    sealed = vault.seal("bob@example.org")
    assert "bob" not in sealed
    assert sealed != vault.seal("bob@example.org")  # fresh nonce each time
    assert vault.open(sealed, vault.pseudonym("bob@example.org")) == "bob@example.org"


def test_sealed_address_refuses_another_pseudonym_or_key():
    vault = AddressVault(b"secret")
    sealed = vault.seal("bob@example.org")
    with pytest.raises(ConfigurationError):
        vault.open(sealed, vault.pseudonym("eve@example.org"))
    with pytest.raises(ConfigurationError):
        AddressVault(b"other").open(sealed, vault.pseudonym("bob@example.org"))
