"""Settings: flags over environment over defaults, clear refusals, no secret shown."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exporter import config
from exporter.cli import main
from exporter.config import ConfigError, resolve, split_credentials
from exporter.scrape_targets import allowed, parse_target


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_defaults_listen_beside_redis_exporter_and_stay_below_prometheus_timeout() -> None:
    settings = resolve(_args(), environ={})
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 9150)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.scrape_timeout == 5.0 < 10.0
    assert settings.postgres_dsn is None and settings.prometheus_url is None
    assert settings.sampler == {} and settings.configure_notifications is False


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    env = {
        "REDIS_URL": "redis://env-host:6380/1",
        "CACHE_EXPORTER_SCRAPE_TIMEOUT": "3",
        "PROMETHEUS_URL": "http://prom:9090/",
        "CACHE_EXPORTER_SAMPLE_MAX_KEYS": "500",
        "CACHE_EXPORTER_CONFIGURE_NOTIFICATIONS": "true",
    }
    settings = resolve(_args("--redis-url", "redis://flag-host:6381/2"), environ=env)
    assert settings.redis_url == "redis://flag-host:6381/2"
    assert settings.instance == "flag-host:6381"
    assert settings.scrape_timeout == 3.0
    assert settings.prometheus_url == "http://prom:9090"
    assert settings.sampler == {"max_keys": 500}
    assert settings.configure_notifications is True
    flags = _args("--sample-budget", "0.5", "--sample-pause", "0", "--configure-notifications")
    settings = resolve(flags, environ={"CACHE_EXPORTER_CONFIGURE_NOTIFICATIONS": "false"})
    assert settings.sampler == {"cycle_budget": 0.5, "pause": 0.0}
    assert settings.configure_notifications is True


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--listen", "9150"], {}, "--listen: expected HOST:PORT"),
        (["--listen", "host:99999"], {}, "--listen: expected HOST:PORT with a port from 1"),
        ([], {"CACHE_EXPORTER_LISTEN": "x"}, "environment variable CACHE_EXPORTER_LISTEN"),
        (["--redis-url", "http://h:1"], {}, "--redis-url: expected a URL whose scheme is one of"),
        (["--redis-url", "redis://:pw@h:port/0"], {}, "--redis-url: expected a redis://"),
        (["--redis-url", "redis://h:6379/abc"], {}, "--redis-url: expected a database number"),
        (["--redis-url", "redis://:pw@h:6379/0?tls=1"], {}, "--redis-url: expected only"),
        ([], {"REDIS_URL": "redis://h/0?socket_timeout=x"}, "variable REDIS_URL: expected only"),
        (["--scrape-timeout", "soon"], {}, "--scrape-timeout: expected a number of seconds"),
        (["--scrape-timeout", "0"], {}, "--scrape-timeout: expected a number of seconds above 0"),
        (["--sample-max-keys", "-3"], {}, "--sample-max-keys: expected a whole number above 0"),
        (["--redis-password-file", "/nonexistent/pw"], {}, "--redis-password-file: expected a"),
        (["--prometheus-url", "prom:9090"], {}, "--prometheus-url: expected an http://"),
        (["--basic-auth-user", "u"], {}, "--basic-auth-user / --basic-auth-password-file"),
        (["--log-level", "loud"], {}, "--log-level: expected one of debug"),
        (["--scrape-max-targets", "0"], {}, "--scrape-max-targets: expected a whole number"),
        (["--scrape-target-idle", "0"], {}, "--scrape-target-idle: expected a number of sec"),
        (["--cluster-refresh", "never"], {}, "--cluster-refresh: expected a number of seconds"),
        ([], {"CACHE_EXPORTER_CLUSTER": "maybe"}, "CACHE_EXPORTER_CLUSTER: expected true or"),
        (["--cluster-sample-replicas"], {}, "--cluster-sample-replicas: expected --cluster as"),
    ],
)
def test_bad_values_are_refused_naming_flag_or_variable_and_expectation(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")) as caught:
        resolve(_args(*argv), environ=env)
    assert "pw@" not in str(caught.value)


def test_cluster_and_target_settings_from_flags_and_environment() -> None:
    settings = resolve(
        _args("--cluster", "--cluster-sample-replicas", "--scrape-max-targets", "7"),
        environ={"CACHE_EXPORTER_CLUSTER_REFRESH": "12", "CACHE_EXPORTER_SCRAPE_TARGET_IDLE": "90"},
    )
    assert settings.cluster and settings.cluster_sample_replicas
    assert (settings.cluster_refresh, settings.scrape_max_targets) == (12.0, 7)
    assert settings.scrape_target_idle == 90.0
    default = resolve(_args(), environ={})
    assert not default.cluster and default.scrape_max_targets == config.DEFAULT_SCRAPE_MAX_TARGETS


def test_a_bad_redis_url_error_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(_args("--redis-url", "redis://admin:hunter2@h:6379/notadb"), environ={})
    assert "hunter2" not in str(caught.value)
    assert "redis://admin:***@h:6379/notadb" in str(caught.value)


def test_serve_exits_2_with_the_flag_named_on_a_bad_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--listen", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "error: --listen: expected HOST:PORT" in err


def test_serve_exits_2_on_an_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--redis", "redis://h"])
    assert caught.value.code == 2
    assert "--redis" in capsys.readouterr().err


def test_credentials_move_out_of_the_url_and_the_password_file_wins(tmp_path: Path) -> None:
    url, kwargs = split_credentials("rediss://app:in-url@cache:6380/3")
    assert url == "rediss://cache:6380/3"
    assert kwargs == {"username": "app", "password": "in-url"}
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    settings = resolve(
        _args("--redis-url", "redis://app:in-url@cache:6379/0", "--redis-password-file", str(pw)),
        environ={},
    )
    assert settings.redis_target == (
        "redis://cache:6379/0",
        {"username": "app", "password": "from-file"},
    )
    assert "from-file" not in repr(settings) and "in-url" not in repr(settings)


def test_empty_secret_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="--bearer-token-file: expected a file holding"):
        resolve(_args("--bearer-token-file", str(empty)), environ={})


@pytest.mark.parametrize(
    ("url", "instance"),
    [
        ("redis://cache:6380/0", "cache:6380"),
        ("rediss://u:pw@cache.example", "cache.example:6379"),
        ("redis://[::1]:6380/0", "[::1]:6380"),
        ("redis://u:pw@[2001:db8::7]/1", "[2001:db8::7]:6379"),
        ("unix:///run/redis.sock", "/run/redis.sock"),
    ],
)
def test_instance_is_an_unambiguous_host_port(url: str, instance: str) -> None:
    assert config.instance_of(url) == instance


def test_scrape_allow_matches_ipv6_targets_by_their_bracketed_host() -> None:
    assert allowed(parse_target("redis://[::1]:6380/0"), ("[::1]",))
    assert allowed(parse_target("redis://[::1]:6380/0"), ("[::1]:6380",))
    assert not allowed(parse_target("redis://[::1]:6380/0"), ("[::1]:6379",))


@pytest.mark.parametrize(
    "dsn",
    ["host=db passwrd=hunter2", "host=db password=hunter2 dbname", "host=db password=hun ter2"],
)
def test_a_malformed_postgres_dsn_is_refused_at_startup_without_echoing_it(dsn: str) -> None:
    with pytest.raises(ConfigError, match="--postgres-dsn: expected a libpq") as caught:
        resolve(_args("--postgres-dsn", dsn), environ={})
    assert "hun" not in str(caught.value)


def test_cdn_logs_take_sources_a_state_file_and_path_classes(tmp_path: Path) -> None:
    (tmp_path / "cf").mkdir()
    classes = tmp_path / "paths.yaml"
    classes.write_text("version: 1\nclasses: [{name: reports, prefixes: [/r/], policy: api}]\n")
    env = {"CACHE_EXPORTER_CDN_LOG": f"cloudfront:{tmp_path / 'cf'},nginx:{tmp_path / 'a.log'}"}
    settings = resolve(
        _args("--cdn-state-file", str(tmp_path / "s.json"), "--path-classes", str(classes)),
        environ=env,
    )
    assert settings.cdn_logs == (("cloudfront", tmp_path / "cf"), ("nginx", tmp_path / "a.log"))
    assert settings.cdn_state_file == tmp_path / "s.json"
    assert settings.path_classes.types == ("reports", "other")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--cdn-log", "akamai:/x"), "--cdn-log: expected comma-separated cloudfront:DIRECTORY"),
        (("--cdn-log", "cloudfront:/no/such/dir"), "naming a directory"),
        (("--cdn-log", "nginx:/no/such/dir/a.log"), "in an existing directory"),
        (("--cdn-log", "nginx:/tmp/a.log"), "--cdn-state-file: expected a state file"),
        (("--cdn-state-file", "/no/such/dir/s.json"), "a file path in an existing directory"),
        # a directory no file can be created in (read-only for us; /proc even for root)
        (("--cdn-state-file", "/proc/cdn-state.json"), "in a directory the exporter can write"),
        (("--cdn-state-file", "/dev/null"), "a regular file, not a FIFO or device"),
        (("--cdn-log", "cloudfront:/tmp,cloudfront:/tmp/../tmp/"), "each log once"),
    ],
)
def test_bad_cdn_settings_name_the_flag(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve(_args(*argv), environ={})


def test_a_bad_path_class_file_names_the_flag_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "paths.yaml"
    bad.write_text("version: 1\nclasses: [{name: other, prefixes: [/x]}]\n")
    with pytest.raises(ConfigError, match=r"--path-classes: expected .*classes\[0\]\.name"):
        resolve(_args("--path-classes", str(bad)), environ={})


def _service_file(path: Path, name: str, window: str = "30d") -> Path:
    path.write_text(
        f"version: 1\nservice: {{name: {name}}}\nwindow: {window}\n"
        "hit_rate: {objective: 0.9, min_read_rate: 0.1}\n"
        "latency: {operation: get, threshold: 5ms, objective: 0.999}\n"
        "key_types:\n  - {name: cart, ttl: 1h, tenant_scoped: false}\n"
    )
    return path


def test_slo_is_repeatable_by_flag_or_comma_separated_variable(tmp_path: Path) -> None:
    """Each file is read; the first gives the collectors their key types and the page its
    default service."""
    a = _service_file(tmp_path / "a.yaml", "alpha")
    b = _service_file(tmp_path / "b.yaml", "beta", "7d")
    settings = resolve(_args("--slo", str(a), "--slo", str(b)), environ={})
    assert [s.service.name for s in settings.service_slos] == ["alpha", "beta"]
    assert settings.slo.service.name == "alpha" and settings.service_slos[1].window.days == 7
    env = {"CACHE_EXPORTER_SLO": f"{b}, {a}"}
    settings = resolve(_args(), environ=env)
    assert [s.service.name for s in settings.service_slos] == ["beta", "alpha"]
    # the flag wins over the variable, wholly
    assert [s.service.name for s in resolve(_args("--slo", str(a)), environ=env).service_slos] == [
        "alpha"
    ]
    assert [s.service.name for s in resolve(_args(), environ={}).service_slos] == ["cache-app"]


def test_two_slo_files_of_one_service_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _service_file(tmp_path / "a.yaml", "alpha"), _service_file(tmp_path / "b.yaml", "alpha")
    assert main(["serve", "--slo", str(a), "--slo", str(b)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {b}: service.name: expected a name no other SLO file uses (also in {a}), "
        "got 'alpha'\n"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("a.yaml,,b.yaml", "expected comma-separated values, none empty"),
        ("missing.yaml", "expected a readable file (no file at 'missing.yaml')"),
    ],
)
def test_a_bad_slo_variable_names_the_variable(env: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(_args(), environ={"CACHE_EXPORTER_SLO": env})
    assert str(caught.value).startswith("environment variable CACHE_EXPORTER_SLO: " + message)


def test_the_external_prometheus_url_is_for_links_and_carries_no_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = resolve(_args("--prometheus-url", "http://u:pw@prom:9090"), environ={})
    assert settings.prometheus_external_url is None  # the page links to the query URL
    env = {"PROMETHEUS_EXTERNAL_URL": "https://prom.example.com/prometheus/"}
    settings = resolve(_args("--prometheus-url", "http://prom:9090"), environ=env)
    assert settings.prometheus_external_url == "https://prom.example.com/prometheus"
    for bad, expected in [
        ("https://viewer:hunter2@prom.example.com", "an http:// or https:// URL without user"),
        ("https://token@prom.example.com", "an http:// or https:// URL without user"),
        ("ftp://prom.example.com", "an http:// or https:// URL with a host"),
        ("https://prom.example.com:port", "an http:// or https:// URL with a host"),
    ]:
        assert main(["serve", "--prometheus-external-url", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --prometheus-external-url: expected {expected}"), err
        assert err.count("\n") == 1 and "hunter2" not in err and "token" not in err
