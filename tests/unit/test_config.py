"""
Tests for L{multistore.config}.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from multistore.configfile import config_from_mapping, load_config
from multistore.configtable import ConfigError

DATA = Path(__file__).parent / "data"


def scratch(case: SynchronousTestCase) -> Path:
    """
    :return: a fresh directory, removed when ``case`` ends.
    """
    path = Path(tempfile.mkdtemp(prefix="multistore-test-"))
    case.addCleanup(shutil.rmtree, path, True)
    return path


class LoadTests(SynchronousTestCase):
    """
    Tests for L{load_config}.
    """

    def test_rust_config_loads_unchanged(self) -> None:
        """
        A file written for the Rust multistore, with every field it knows,
        loads, and its values are kept.
        """
        config = load_config(DATA / "rust-example.toml")
        self.assertEqual(
            (config.owner_id, config.owner_display_name), ("my-org", "My Organization")
        )
        ml, azure, gcs = config.buckets
        self.assertEqual(ml.backend_type, "s3")
        self.assertEqual(ml.backend_prefix, "v2")
        self.assertEqual(ml.allowed_roles, ("github-actions-deployer",))
        self.assertEqual(ml.option("bucket_name"), "ml-pipeline-artifacts")
        self.assertEqual((azure.backend_type, gcs.backend_type), ("azure", "gcs"))
        self.assertTrue(gcs.flag("skip_signature"))
        deployer, legacy = config.roles
        self.assertEqual(deployer.required_audiences, ("sts.s3proxy.example.com",))
        self.assertEqual(legacy.required_audiences, ("one-audience",))
        self.assertEqual(deployer.allowed_scopes[0].bucket, "{sub}")
        (credential,) = config.credentials
        self.assertEqual(credential.expires_at, datetime(2030, 1, 1, tzinfo=UTC))
        self.assertEqual(
            credential.allowed_scopes[0].actions,
            frozenset({"get_object", "head_object"}),
        )
        # Every store kind is served: nothing to warn about for them.
        self.assertFalse(any("azure-data" in w for w in config.warnings))

    def test_json(self) -> None:
        """
        A file whose name ends in ``.json`` is read as JSON.
        """
        path = scratch(self) / "config.json"
        path.write_text(
            json.dumps(
                {
                    "buckets": [
                        {
                            "name": "a",
                            "backend_type": "file",
                            "backend_options": {"root": "."},
                        }
                    ]
                }
            )
        )
        self.assertEqual(load_config(path).buckets[0].name, "a")

    def test_relative_root(self) -> None:
        """
        A file store's relative root is resolved against the config file's
        directory.
        """
        config = load_config(
            Path(__file__).parents[2] / "etc/multistore/multistore.toml"
        )
        root = Path(config.buckets[0].backend_options["root"])
        self.assertTrue((root / "README.md").is_file())

    def test_unreadable_and_unparseable(self) -> None:
        """
        A missing file and bad TOML are reported with the file name.
        """
        with self.assertRaises(ConfigError) as e:
            load_config("/nonexistent/multistore.toml")
        self.assertIn("/nonexistent/multistore.toml", str(e.exception))
        path = scratch(self) / "config.toml"
        path.write_text("[[buckets]\n")
        with self.assertRaises(ConfigError) as e:
            load_config(path)
        self.assertIn("not valid TOML", str(e.exception))


class ValidationTests(SynchronousTestCase):
    """
    Tests for the checks of L{config_from_mapping}.
    """

    def problems(self, data: dict[str, object]) -> list[str]:
        with self.assertRaises(ConfigError) as e:
            config_from_mapping(data, "test.toml")
        self.assertIn("test.toml", e.exception.explain())
        return list(e.exception.problems)

    def test_every_problem_named(self) -> None:
        """
        Every problem is reported at once, each naming its table and field.
        """
        problems = self.problems(
            {
                "buckets": [
                    {"name": "a", "backend_type": "s3", "anonymous_acess": True},
                    {"name": "a", "backend_type": "nope"},
                ],
                "credentials": [
                    {
                        "access_key_id": "AK",
                        "principal_name": "p",
                        "allowed_scopes": [{"bucket": "a", "actions": ["get_objects"]}],
                    }
                ],
                "servr": {},
            }
        )
        text = "\n".join(problems)
        self.assertIn(
            "[[buckets]] #1 (name = 'a'), field 'anonymous_acess': unknown field (did you mean 'anonymous_access'?)",
            text,
        )
        self.assertIn(
            "field 'backend_options.bucket_name': required for s3 backends", text
        )
        self.assertIn(
            "[[buckets]] #2 (name = 'a'), field 'backend_type': unknown backend type 'nope'",
            text,
        )
        self.assertIn("duplicate name", text)
        self.assertIn("field 'secret_access_key': required", text)
        self.assertIn("unknown action 'get_objects' (did you mean 'get_object'?)", text)
        self.assertIn("'servr': unknown table or field (did you mean 'server'?)", text)

    def test_types(self) -> None:
        """
        Wrongly typed values are named with what was expected.
        """
        problems = self.problems(
            {
                "server": {
                    "backend_timeout": "fast",
                    "max_clock_skew": -1,
                    "listen": 5,
                },
                "buckets": [
                    {
                        "name": "a",
                        "backend_type": "file",
                        "anonymous_access": "yes",
                        "backend_options": {"root": "/nonexistent-dir"},
                    }
                ],
            }
        )
        text = "\n".join(problems)
        self.assertIn(
            "[server], field 'backend_timeout': must be a number, not a string", text
        )
        self.assertIn("[server], field 'max_clock_skew': must be at least 1", text)
        self.assertIn("[server], field 'listen': must be a list of strings", text)
        self.assertIn("field 'anonymous_access': must be true or false", text)
        self.assertIn("/nonexistent-dir is not a directory", text)

    def test_secret_sources(self) -> None:
        """
        Secrets may come from a file or an environment variable.
        """
        secret_file = scratch(self) / "secret"
        secret_file.write_text("from-file\n")
        os.environ["MULTISTORE_TEST_SECRET"] = "from-env"
        self.addCleanup(os.environ.pop, "MULTISTORE_TEST_SECRET")
        config = config_from_mapping(
            {
                "buckets": [
                    {
                        "name": "b",
                        "backend_type": "s3",
                        "backend_options": {
                            "bucket_name": "real",
                            "access_key_id": "AK",
                            "secret_access_key_env": "MULTISTORE_TEST_SECRET",
                        },
                    }
                ],
                "credentials": [
                    {
                        "access_key_id": "AK",
                        "secret_access_key_file": str(secret_file),
                        "principal_name": "p",
                    }
                ],
            }
        )
        self.assertEqual(config.credentials[0].secret_access_key, "from-file")
        self.assertEqual(config.buckets[0].option("secret_access_key"), "from-env")
        self.assertNotIn("from-file", repr(config))
        self.assertNotIn("from-env", repr(config))

    def test_secret_source_problems(self) -> None:
        """
        A missing secret file or variable, or two sources at once, are
        errors.
        """
        problems = "\n".join(
            self.problems(
                {
                    "credentials": [
                        {
                            "access_key_id": "A",
                            "principal_name": "p",
                            "secret_access_key_file": "/nonexistent",
                        },
                        {
                            "access_key_id": "B",
                            "principal_name": "p",
                            "secret_access_key_env": "MULTISTORE_UNSET_VAR",
                        },
                        {
                            "access_key_id": "C",
                            "principal_name": "p",
                            "secret_access_key": "x",
                            "secret_access_key_env": "Y",
                        },
                    ]
                }
            )
        )
        self.assertIn("cannot read /nonexistent", problems)
        self.assertIn(
            "environment variable 'MULTISTORE_UNSET_VAR' is not set", problems
        )
        self.assertIn("give only one of", problems)

    def test_backend_option_aliases(self) -> None:
        """
        The object_store aliases the Rust system accepted map to one name;
        unknown options are warnings.
        """
        config = config_from_mapping(
            {
                "buckets": [
                    {
                        "name": "b",
                        "backend_type": "s3",
                        "backend_options": {
                            "aws_bucket": "real",
                            "aws_endpoint_url": "http://127.0.0.1:9000",
                            "allow_http": True,
                            "mystery": "x",
                        },
                    }
                ]
            }
        )
        bucket = config.buckets[0]
        self.assertEqual(bucket.option("bucket_name"), "real")
        self.assertEqual(bucket.option("endpoint"), "http://127.0.0.1:9000")
        self.assertTrue(any("mystery" in w for w in config.warnings))

    def test_file_and_env_only_for_secrets(self) -> None:
        """
        ``_file`` and ``_env`` forms exist for secret fields only; on any
        other field they are unknown, not silently ignored.
        """
        problems = "\n".join(self.problems({"server": {"region_env": "X"}}))
        self.assertIn("[server], field 'region_env': unknown field", problems)

    def test_options_not_acted_on(self) -> None:
        """
        Options of the Rust format that this version does not act on load
        with a warning saying so.
        """
        config = config_from_mapping(
            {
                "buckets": [
                    {
                        "name": "b",
                        "backend_type": "s3",
                        "backend_options": {
                            "bucket_name": "real",
                            "unsigned_payload": "true",
                        },
                    }
                ]
            }
        )
        self.assertTrue(
            any(
                "unsigned_payload" in w and "not supported" in w
                for w in config.warnings
            )
        )
        self.assertNotIn("unsigned_payload", config.buckets[0].backend_options)

    def test_federation_needs_provider(self) -> None:
        """
        A bucket reached with the OIDC provider's tokens (the Rust format's
        C{auth_type = "oidc"}) needs C{[oidc_provider]}.
        """
        with self.assertRaises(ConfigError) as raised:
            config_from_mapping(
                {
                    "buckets": [
                        {
                            "name": "b",
                            "backend_type": "s3",
                            "backend_options": {
                                "bucket_name": "real",
                                "auth_type": "oidc",
                                "oidc_role_arn": "arn:x",
                            },
                        }
                    ]
                }
            )
        self.assertIn("needs [oidc_provider]", raised.exception.explain())

    def test_patterns(self) -> None:
        """
        A pattern must name each bucket's place with {bucket}; {bucket} is
        for patterns only.
        """
        config = config_from_mapping(
            {
                "buckets": [
                    {
                        "name": "team-*",
                        "backend_type": "s3",
                        "backend_prefix": "tenants/{bucket}",
                        "backend_options": {"bucket_name": "shared"},
                    }
                ]
            }
        )
        self.assertTrue(config.buckets[0].is_pattern)
        problems = "\n".join(
            self.problems(
                {
                    "buckets": [
                        {
                            "name": "team-*",
                            "backend_type": "s3",
                            "backend_options": {"bucket_name": "shared"},
                        },
                        {
                            "name": "plain",
                            "backend_type": "s3",
                            "backend_options": {"bucket_name": "{bucket}"},
                        },
                    ]
                }
            )
        )
        self.assertIn("needs {bucket}", problems)
        self.assertIn("only meaningful for a pattern", problems)


KEY_A = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes


class CloudBackendConfigTests(SynchronousTestCase):
    """
    Tests for the checks of Azure and GCS C{backend_options}.
    """

    def problems(self, kind: str, options: dict[str, str]) -> str:
        with self.assertRaises(ConfigError) as e:
            config_from_mapping(
                {
                    "buckets": [
                        {"name": "b", "backend_type": kind, "backend_options": options}
                    ]
                },
                "test.toml",
            )
        return "\n".join(e.exception.problems)

    def test_azure_needs_container_and_account(self) -> None:
        """
        An Azure bucket needs its container, and an account (by name, or in
        the endpoint); an account key that is not base64 is refused.
        """
        text = self.problems("azure", {"access_key": "not base64!"})
        self.assertIn("'backend_options.container_name': required", text)
        self.assertIn("'backend_options.account_name': required", text)
        self.assertIn("'backend_options.access_key': must be the base64", text)
        text = self.problems("az", {"container_name": "c", "endpoint": "ftp://x"})
        self.assertIn("'backend_options.endpoint': must be an http", text)
        self.assertNotIn("account_name", text)

    def test_azure_container_pattern(self) -> None:
        """
        ``{bucket}`` may name the container of a pattern bucket.
        """
        config = config_from_mapping(
            {
                "buckets": [
                    {
                        "name": "team-*",
                        "backend_type": "azure",
                        "backend_options": {
                            "account_name": "acct",
                            "container_name": "{bucket}",
                        },
                    }
                ]
            },
            "test.toml",
        )
        (bucket,) = config.buckets
        self.assertEqual(
            bucket.instantiate("team-x").option("container_name"), "team-x"
        )

    def test_gcs_needs_bucket_and_a_real_key(self) -> None:
        """
        A GCS bucket needs its bucket name; a service account key must be
        one (JSON with an email and a private key).
        """
        text = self.problems("gs", {"service_account_key": "{}"})
        self.assertIn("'backend_options.bucket_name': required", text)
        self.assertIn("'backend_options.service_account_key': must be", text)

    def test_gcs_service_account_path(self) -> None:
        """
        ``service_account_path`` (the Rust system's option) is read when the
        configuration loads, into ``service_account_key``; an unreadable
        file is a configuration error.
        """
        key = json.dumps({"client_email": "a@b", "private_key": "k"})
        path = scratch(self) / "key.json"
        path.write_text(key)
        config = config_from_mapping(
            {
                "buckets": [
                    {
                        "name": "g",
                        "backend_type": "gcs",
                        "backend_options": {
                            "bucket_name": "g",
                            "service_account_path": str(path),
                        },
                    }
                ]
            },
            "test.toml",
        )
        (bucket,) = config.buckets
        self.assertEqual(bucket.option("service_account_key"), key)
        self.assertIsNone(bucket.option("service_account_path"))
        text = self.problems(
            "gcs", {"bucket_name": "g", "service_account_path": "/nonexistent/k"}
        )
        self.assertIn("cannot read /nonexistent/k", text)


class StsConfigTests(SynchronousTestCase):
    """
    Tests for ``[sts]`` and the trust rules of ``[[roles]]``.
    """

    def problems(self, data: dict[str, object]) -> str:
        with self.assertRaises(ConfigError) as e:
            config_from_mapping(data, "test.toml")
        return "\n".join(e.exception.problems)

    def role(self, **fields: object) -> dict[str, object]:
        role: dict[str, object] = {
            "role_id": "r",
            "trusted_oidc_issuers": ["https://issuer.example"],
            "required_audiences": ["multistore"],
            "max_session_duration_secs": 3600,
        }
        role.update(fields)
        return role

    def test_keys(self) -> None:
        """
        Keys come inline, from files or the environment, in order; the
        Rust system's SESSION_TOKEN_KEY works when no key is configured.
        """
        path = scratch(self) / "key"
        path.write_text(KEY_A + "\n")
        config = config_from_mapping(
            {
                "sts": {
                    "keys": [
                        {"id": "new", "key": KEY_A},
                        {"id": "old", "key_file": str(path)},
                    ]
                }
            }
        )
        self.assertEqual([k.key_id for k in config.sts.keys], ["new", "old"])
        self.assertEqual(config.sts.keys[1].key, b"0123456789abcdef" * 2)
        self.assertNotIn(KEY_A, repr(config))
        os.environ["SESSION_TOKEN_KEY"] = KEY_A
        self.addCleanup(os.environ.pop, "SESSION_TOKEN_KEY")
        self.assertEqual(
            [k.key_id for k in config_from_mapping({}).sts.keys], ["default"]
        )

    def test_bad_keys(self) -> None:
        """
        A key that is not base64 of 32 bytes, or a repeated id, is an error.
        """
        problems = self.problems(
            {
                "sts": {
                    "keys": [{"id": "a", "key": "c2hvcnQ="}, {"id": "a", "key": "!!"}]
                }
            }
        )
        self.assertIn("must be 32 bytes (AES-256), not 5", problems)
        self.assertIn("must be the standard base64 of 32 bytes", problems)
        self.assertIn("key ids must be different", problems)

    def test_no_key_warns(self) -> None:
        """
        Roles without a session token key load, with STS off and a warning.
        """
        config = config_from_mapping({"roles": [self.role()]})
        self.assertTrue(any("STS is off" in w for w in config.warnings))

    def test_audience_required(self) -> None:
        """
        A role must restrict audiences unless it says it accepts any.
        """
        problems = self.problems({"roles": [self.role(required_audiences=[])]})
        self.assertIn("a role must name the audiences it accepts", problems)
        config = config_from_mapping(
            {"roles": [self.role(required_audiences=[], allow_any_audience=True)]}
        )
        self.assertTrue(config.roles[0].allow_any_audience)

    def test_duration_floor(self) -> None:
        """
        A role whose longest session is under 900 seconds is an error.
        """
        problems = self.problems({"roles": [self.role(max_session_duration_secs=600)]})
        self.assertIn("must be at least 900", problems)

    def test_claim_conditions(self) -> None:
        """
        Claim conditions are globs, one or several per claim.
        """
        config = config_from_mapping(
            {
                "roles": [
                    self.role(
                        claim_conditions={
                            "repository_owner": "org",
                            "environment": ["prod", "stage-*"],
                        }
                    )
                ]
            }
        )
        self.assertEqual(
            dict(config.roles[0].claim_conditions),
            {"repository_owner": ("org",), "environment": ("prod", "stage-*")},
        )
