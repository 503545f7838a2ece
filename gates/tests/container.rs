//! The three FROM-scratch images, built by `deploy/container/build.sh` with
//! podman. `podman run` cannot start containers in this sandbox (crun may
//! not set rlimits), so each image's root filesystem is unpacked
//! (`podman image mount`, copied aside) and its configured entrypoint is run
//! there with the image's own user, environment and working directory
//! (chroot, as root).

use hakiri_gates::workspace::Workspace;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The image's config: entrypoint, user, env, working dir, ports, labels.
fn config(podman: &str, image: &str) -> Value {
    let json =
        run(Command::new(podman).args(["image", "inspect", image, "--format", "{{json .Config}}"]));
    serde_json::from_str(&json).unwrap()
}

/// The image's entrypoint with `args`, as the image would run it.
fn entrypoint(rootfs: &Path, config: &Value, args: &[&str]) -> Command {
    let user = config["User"].as_str().unwrap();
    let mut cmd = Command::new("chroot");
    cmd.arg(format!("--userspec={user}")).arg(rootfs);
    for part in config["Entrypoint"].as_array().unwrap() {
        cmd.arg(part.as_str().unwrap());
    }
    cmd.args(args).env_clear();
    for kv in config["Env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn each_profile_image_runs_its_entrypoint_as_configured() {
    let podman = hakiri_testkit::skip_unless_configured!("HAKIRI_TEST_PODMAN");
    // `podman image mount` and chroot need root: a runner without it runs
    // this test through `sudo .ci/containers` instead (see ci.yml).
    let uid = Command::new("id").arg("-u").output().unwrap();
    if text(&uid.stdout).trim() != "0" {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED each_profile_image_runs_its_entrypoint_as_configured: needs root (podman image mount, chroot); run `sudo -E env PATH=\"$PATH\" .ci/containers`"
        );
        return;
    }
    let ws = Workspace::locate().unwrap();
    let script = ws.root.join("deploy/container/build.sh");
    for profile in ["core", "full", "coord"] {
        ws.ship(&format!("hakiri-{profile}")).unwrap();
        let image = run(Command::new(&script)
            .arg(profile)
            .env("CARGO_TARGET_DIR", &ws.target_dir));
        let cfg = config(&podman, &image);
        assert_eq!(cfg["User"], "65532:65532", "{cfg}");
        assert_eq!(cfg["WorkingDir"], "/data");
        assert!(cfg["Volumes"]["/data"].is_object(), "{cfg}");
        assert_eq!(
            cfg["Labels"]["dev.hakiri.profile"],
            format!("hakiri-{profile}")
        );
        assert!(cfg["Labels"]["org.opencontainers.image.version"].is_string());
        let mount = run(Command::new(&podman).args(["image", "mount", &image]));
        let rootfs = tempfile::tempdir().unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{mount}/."))
            .arg(rootfs.path())
            .status()
            .unwrap();
        assert!(copied.success());
        let _ = Command::new(&podman)
            .args(["image", "unmount", &image])
            .status();
        // Nothing but the binary, the CA bundle and the volume.
        let listing = run(Command::new("find")
            .arg(".")
            .arg("-type")
            .arg("f")
            .current_dir(rootfs.path()));
        let mut files: Vec<&str> = listing.lines().collect();
        files.sort();
        assert_eq!(
            files,
            [
                "./etc/ssl/certs/ca-certificates.crt",
                "./usr/local/bin/hakiri"
            ]
        );

        let report: Value = serde_json::from_str(&run(&mut entrypoint(
            rootfs.path(),
            &cfg,
            &["capabilities", "--json"],
        )))
        .unwrap();
        assert_eq!(report["profile"], format!("hakiri-{profile}"));
        let caps: Vec<&str> = report["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        match profile {
            "coord" => {
                for heavy in ["engine", "datasets", "wasm-host", "mcp", "search", "vector"] {
                    assert!(!caps.contains(&heavy), "coord's image has {heavy}");
                }
                let libs = report.to_string().to_lowercase();
                assert!(
                    !libs.contains("duckdb") && !libs.contains("wasmtime"),
                    "{libs}"
                );
            }
            "core" => {
                let answer = run(&mut entrypoint(
                    rootfs.path(),
                    &cfg,
                    &["sql", "--format", "csv", "select 42 as x"],
                ));
                assert_eq!(answer, "x\n42");
            }
            _ => {
                assert_eq!(cfg["ExposedPorts"], serde_json::json!({"7878/tcp": {}}));
                let mut daemon = entrypoint(rootfs.path(), &cfg, &["serve"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                let status = loop {
                    match hakiri_testkit::http::request(
                        "POST",
                        "http://127.0.0.1:7878/mcp",
                        &[],
                        b"{}",
                        Duration::from_secs(5),
                    ) {
                        Ok(r) => break r.status,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(100))
                        }
                        Err(e) => panic!("the image's MCP port never answered: {e}"),
                    }
                };
                let _ = daemon.kill();
                let _ = daemon.wait();
                assert_eq!(status, 401, "MCP answers, and asks for a token");
            }
        }
    }
}
