"""containerd config rendering: registries.yaml (k3s's shape) → config.toml + hosts.toml."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from shipmate import containerd_config as cc

CRI = ("plugins", "io.containerd.grpc.v1.cri")


def cri_section(rendered: cc.RenderedConfig) -> dict:
    config = tomllib.loads(rendered.config_toml)
    assert config["version"] == 2
    return config[CRI[0]][CRI[1]]


def hosts(rendered: cc.RenderedConfig, host: str) -> dict:
    return tomllib.loads(rendered.hosts[host])


def test_empty_registries_gives_cri_config_and_local_registry_only() -> None:
    rendered = cc.render({})
    cri = cri_section(rendered)
    assert cri["sandbox_image"] == "127.0.0.1:5000/shipmate/pause:1.0"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"] == {"bin_dir": "/opt/cni/bin", "conf_dir": "/etc/cni/net.d"}
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is False
    assert cri["containerd"]["default_runtime_name"] == "runc"
    assert cri["registry"] == {"config_path": "/etc/containerd/certs.d"}
    assert list(rendered.hosts) == ["127.0.0.1:5000"]
    assert hosts(rendered, "127.0.0.1:5000") == {
        "server": "http://127.0.0.1:5000",
        "host": {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}},
    }


def test_none_document_is_empty() -> None:
    assert cc.render(None) == cc.render({})


def test_systemd_cgroup_flag() -> None:
    runc = cri_section(cc.render({}, systemd_cgroup=True))["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True


def test_docker_io_mirror_keeps_upstream_server_as_fallback() -> None:
    rendered = cc.render({"mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]}}})
    assert sorted(rendered.hosts) == ["127.0.0.1:5000", "docker.io"]
    assert hosts(rendered, "docker.io") == {
        "server": "https://registry-1.docker.io",
        "host": {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}},
    }


def test_mirror_endpoints_keep_their_order() -> None:
    endpoints = ["https://b.example:5000", "https://a.example", "http://10.0.0.1:5000/"]
    rendered = cc.render({"mirrors": {"quay.io": {"endpoint": endpoints}}})
    assert list(hosts(rendered, "quay.io")["host"]) == ["https://b.example:5000", "https://a.example",
                                                        "http://10.0.0.1:5000"]
    assert hosts(rendered, "quay.io")["server"] == "https://quay.io"


def test_endpoint_with_path_uses_override_path() -> None:
    rendered = cc.render({"mirrors": {"docker.io": {"endpoint": ["https://mirror.example/proxy"]}}})
    host = hosts(rendered, "docker.io")["host"]
    assert host == {"https://mirror.example/proxy/v2": {"capabilities": ["pull", "resolve"], "override_path": True}}


def test_wildcard_mirror_goes_to_default_dir_without_server() -> None:
    rendered = cc.render({"mirrors": {"*": {"endpoint": ["http://127.0.0.1:5000"]}}})
    assert hosts(rendered, "_default") == {"host": {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}}}


def test_tls_config_applies_to_mirror_endpoint_and_to_server() -> None:
    tls = {"ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.pem", "insecure_skip_verify": True}
    rendered = cc.render({
        "mirrors": {"docker.io": {"endpoint": ["https://mirror.example:5000"]}},
        "configs": {"mirror.example:5000": {"tls": tls}, "registry.example": {"tls": {"ca_file": "/r.pem"}}},
    })
    mirror = hosts(rendered, "docker.io")["host"]["https://mirror.example:5000"]
    assert mirror == {"capabilities": ["pull", "resolve"], "skip_verify": True, "ca": "/ca.pem",
                      "client": [["/c.pem", "/k.pem"]]}
    # A configs entry without a mirror still gets its own hosts.toml, for its TLS settings.
    assert hosts(rendered, "registry.example") == {"server": "https://registry.example", "ca": "/r.pem"}
    assert hosts(rendered, "mirror.example:5000")["skip_verify"] is True


def test_auth_goes_to_cri_registry_configs() -> None:
    rendered = cc.render({"configs": {"registry.example:5000": {
        "auth": {"username": "me", "password": 'p"w\\d'}}}})
    configs = cri_section(rendered)["registry"]["configs"]
    assert configs == {"registry.example:5000": {"auth": {"username": "me", "password": 'p"w\\d'}}}
    assert "auth" not in rendered.hosts["registry.example:5000"]


def test_output_is_deterministic() -> None:
    document = {"mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]}, "a.io": {}},
                "configs": {"b.io": {"auth": {"auth": "dG9rZW4="}}}}
    assert cc.render(document) == cc.render(document)


@pytest.mark.parametrize("document, message", [
    ({"mirror": {}}, "registries.yaml.mirror: unknown key"),
    ({"mirrors": {"docker.io": {"endpoints": []}}}, "mirrors.docker.io.endpoints: unknown key"),
    ({"mirrors": {"docker.io": {"endpoint": "http://x"}}}, "mirrors.docker.io.endpoint: expected a list"),
    ({"mirrors": {"docker.io": {"endpoint": ["ftp://x"]}}}, "mirrors.docker.io.endpoint[0]"),
    ({"mirrors": {"docker.io": {"endpoint": [5000]}}}, "mirrors.docker.io.endpoint[0]: expected a string"),
    ({"mirrors": {"docker.io": {"rewrite": {"^a": "b"}}}}, "mirrors.docker.io.rewrite: not supported"),
    ({"mirrors": {"https://docker.io": {}}}, "mirrors.https://docker.io"),
    ({"mirrors": []}, "mirrors: expected a mapping"),
    ({"configs": {"r.io": {"tls": {"insecure": True}}}}, "configs.r.io.tls.insecure: unknown key"),
    ({"configs": {"r.io": {"tls": {"insecure_skip_verify": "yes"}}}}, "insecure_skip_verify: expected true or false"),
    ({"configs": {"r.io": {"tls": {"cert_file": "/c"}}}}, "cert_file and key_file must be given together"),
    ({"configs": {"r.io": {"auth": {"user": "x"}}}}, "configs.r.io.auth.user: unknown key"),
    ({"configs": {"r.io": {"mirror": {}}}}, "configs.r.io.mirror: unknown key"),
    ("text", "registries.yaml: expected a mapping"),
])
def test_bad_documents_name_the_key(document: object, message: str) -> None:
    with pytest.raises(cc.RegistriesError) as error:
        cc.render(document)
    assert message in str(error.value)


def test_apply_writes_atomically_and_reports_changes(tmp_path: Path) -> None:
    config, certs = tmp_path / "containerd" / "config.toml", tmp_path / "certs.d"
    mirrors = cc.render({"mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]}}})
    assert cc.apply(mirrors, config, certs) == [config, certs / "127.0.0.1:5000" / "hosts.toml",
                                                certs / "docker.io" / "hosts.toml"]
    assert cc.apply(mirrors, config, certs) == []
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".")) == []
    # A mirror dropped from registries.yaml loses its hosts.toml; a hand-written one is kept.
    (certs / "quay.io").mkdir()
    (certs / "quay.io" / "hosts.toml").write_text('server = "https://quay.io"\n')
    assert cc.apply(cc.render({}), config, certs) == [certs / "docker.io" / "hosts.toml"]
    assert (certs / "quay.io" / "hosts.toml").exists()


def test_main_reports_bad_file_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registries = tmp_path / "registries.yaml"
    registries.write_text("mirrors:\n  docker.io:\n    endpont: [http://x]\n")
    out = tmp_path / "config.toml"
    assert cc.main(["--registries", str(registries), "--out", str(out), "--certs-dir", str(tmp_path / "c")]) == 1
    assert "mirrors.docker.io.endpont: unknown key" in capsys.readouterr().err
    assert not out.exists()


def test_main_without_registries_file(tmp_path: Path) -> None:
    out, certs = tmp_path / "config.toml", tmp_path / "certs.d"
    assert cc.main(["--registries", str(tmp_path / "absent.yaml"), "--out", str(out),
                    "--certs-dir", str(certs), "--systemd-cgroup", "false"]) == 0
    assert tomllib.loads(out.read_text())[CRI[0]][CRI[1]]["registry"]["config_path"] == str(certs)
    assert (certs / "127.0.0.1:5000" / "hosts.toml").exists()


def test_default_mirror_applies_only_without_a_registries_file(tmp_path: Path) -> None:
    out, certs = tmp_path / "config.toml", tmp_path / "certs.d"
    args = ["--out", str(out), "--certs-dir", str(certs), "--systemd-cgroup", "false",
            "--default-mirror", "http://127.0.0.1:5000"]
    assert cc.main(["--registries", str(tmp_path / "absent.yaml"), *args]) == 0
    assert 'host."http://127.0.0.1:5000"' in (certs / "docker.io" / "hosts.toml").read_text()
    # A file of the user's own wins, whatever it says about docker.io.
    registries = tmp_path / "registries.yaml"
    registries.write_text("mirrors:\n  docker.io:\n    endpoint: [http://127.0.0.1:5999]\n")
    assert cc.main(["--registries", str(registries), *args]) == 0
    hosts = (certs / "docker.io" / "hosts.toml").read_text()
    assert 'host."http://127.0.0.1:5999"' in hosts and "5000" not in hosts


def test_without_a_registries_file_the_public_registries_manifests_name_are_mirrored(tmp_path) -> None:
    """make up's default: busybox, registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:2.0 come from the local registry."""
    document = cc.load_registries(tmp_path / "absent.yaml", "http://127.0.0.1:5000")
    assert document == {"mirrors": {name: {"endpoint": ["http://127.0.0.1:5000"]}
                                     for name in ("docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io")}}
    rendered = cc.render(document)
    assert any("registry.k8s.io" in path for path in rendered.hosts)
