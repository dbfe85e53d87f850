import subprocess

from tests.conftest import RAY_BIN


def test_cluster_accepts_token_and_refuses_without(ray_cluster, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("import ray\nray.init()\nprint('CPUS', int(ray.cluster_resources()['CPU']))\n")
    ok = subprocess.run([RAY_BIN, "job", "submit", "--address", ray_cluster.dashboard_url,
                         "--working-dir", str(tmp_path), "--", "python", "hello.py"],
                        env=ray_cluster.env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]
    assert f"CPUS {ray_cluster.num_cpus}" in ok.stdout

    env = dict(ray_cluster.env)
    env.pop("RAY_AUTH_TOKEN")
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    refused = subprocess.run([RAY_BIN, "job", "submit", "--address", ray_cluster.dashboard_url,
                              "--", "python", "-c", "print(1)"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "Authentication" in refused.stdout + refused.stderr
