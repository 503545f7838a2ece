//! README's "Datasets on S3" and "Deploy to Lambda" sections, run as
//! written by a user with `hakiri` (this hakiri-core) on their PATH, in a
//! checkout, against the local S3 server. What cannot run here is stood in
//! for, and only that: `sam` records the deployment it was asked for, the
//! test deploys it locally (the zip's `bootstrap` under the Runtime API
//! emulator, with the template's environment), and `aws` prints the local
//! Function URL. Substituted: the bucket name and the function's `/tmp` home.

use hakiri_testkit::lambda::Emulator;
use hakiri_testkit::s3::Bucket;
use hakiri_testkit::{function_url, skip_unless_configured, text, Home};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hakiri-core");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first ```sh block under `heading` in the README.
fn block(heading: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no `{heading}`"))
        .1;
    let code = section.split_once("```sh\n").expect("a sh block").1;
    code.split_once("\n```")
        .expect("a closed block")
        .0
        .to_string()
}

/// `bash -euo pipefail -c script` as the user: HOME, PATH and the S3 server's
/// environment, nothing Hakiri- or AWS-specific inherited from the test.
fn shell(script: &str, dir: &Path, home: &Path, path: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("HAKIRI_") || name.starts_with("AWS_") {
            cmd.env_remove(&key);
        }
    }
    let system = std::env::var("PATH").unwrap_or_default();
    cmd.env("HOME", home)
        .env("PATH", format!("{}:{system}", path.display()))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null());
    cmd
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The function's environment from the template, `!Ref`/`!Sub` resolved
/// with the deployment's parameters (else the template's defaults).
fn template_environment(
    template: &Path,
    params: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let script = "import json,sys,yaml\n\
        class L(yaml.SafeLoader): pass\n\
        L.add_multi_constructor('!', lambda l, tag, node: {tag: l.construct_scalar(node)})\n\
        print(json.dumps(yaml.load(open(sys.argv[1]), Loader=L)))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(template)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let value = |name: &str| {
        params.get(name).cloned().unwrap_or_else(|| {
            let d = &t["Parameters"][name]["Default"];
            d.as_str().map_or(d.to_string(), str::to_string)
        })
    };
    let vars = t["Resources"]["Hakiri"]["Properties"]["Environment"]["Variables"]
        .as_object()
        .expect("the function's environment");
    vars.iter()
        .map(|(k, v)| {
            let resolved = if let Some(name) = v["Ref"].as_str() {
                value(name)
            } else if let Some(sub) = v["Sub"].as_str() {
                let mut s = sub.to_string();
                while let Some(start) = s.find("${") {
                    let end = s[start..].find('}').unwrap() + start;
                    let name = s[start + 2..end].to_string();
                    s.replace_range(start..=end, &value(&name));
                }
                s
            } else {
                v.as_str().map_or(v.to_string(), str::to_string)
            };
            (k.clone(), resolved)
        })
        .collect()
}

#[test]
fn the_readme_serverless_sections_work_as_written() {
    let aws = skip_unless_configured!("HAKIRI_TEST_AWS_ENDPOINT");
    let lint = skip_unless_configured!("HAKIRI_TEST_CFN_LINT");
    let bucket = Bucket::create(&aws, "hakiri-readme");
    let s3_env = bucket.env();
    let user = Home::new();
    let (checkout, bin) = (user.path().join("checkout"), user.path().join("bin"));
    for dir in ["examples/data", "deploy/lambda"] {
        std::fs::create_dir_all(checkout.join(dir)).unwrap();
    }
    for file in ["examples/data/sales.csv", "deploy/lambda/template.yaml"] {
        std::fs::copy(repo().join(file), checkout.join(file)).unwrap();
    }
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("hakiri")).unwrap();
    let emulator = Arc::new(Emulator::start().unwrap());
    let url = function_url::start(emulator.clone()).unwrap();
    let recorded = user.path().join("sam.args");
    executable(
        &bin.join("sam"),
        // Written aside and renamed, so the test never reads half of it.
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
            recorded.display()
        ),
    );
    executable(&bin.join("aws"), &format!("#!/bin/sh\necho '{url}'\n"));
    let as_written = |heading: &str| block(heading).replace("my-bucket", &bucket.name);

    // Datasets on S3.
    let out = shell(
        &as_written("### Datasets on S3"),
        &checkout,
        user.path(),
        &bin,
        &s3_env,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("orders"),
        "{}",
        text(&out.stdout)
    );

    // Deploy to Lambda: the script runs until its curl is answered.
    let started = Instant::now();
    let mut script = shell(
        &as_written("### Deploy to Lambda"),
        &checkout,
        user.path(),
        &bin,
        &s3_env,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    while !recorded.exists() {
        if let Some(status) = script.try_wait().unwrap() {
            let out = script.wait_with_output().unwrap();
            panic!(
                "the script ended ({status}) before `sam deploy`: {}",
                text(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no `sam deploy` within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let args: Vec<String> = std::fs::read_to_string(&recorded)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--template-file")
        .expect("--template-file");
    let template = checkout.join(&args[at + 1]);
    let params: BTreeMap<String, String> = args
        .iter()
        .skip_while(|a| *a != "--parameter-overrides")
        .skip(1)
        .take_while(|a| !a.starts_with("--"))
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(params.get("Bucket"), Some(&bucket.name), "{args:?}");

    let lint = Command::new(&lint).arg(&template).output().unwrap();
    assert!(
        lint.status.success(),
        "cfn-lint: {}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );

    // The deployment: the zip's bootstrap, with the template's environment.
    let function = user.path().join("function");
    std::fs::create_dir_all(&function).unwrap();
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(checkout.join("hakiri-core-lambda.zip"))
        .arg("-d")
        .arg(&function)
        .output()
        .unwrap();
    assert!(unzip.status.success(), "{}", text(&unzip.stderr));
    let bootstrap = function.join("bootstrap");
    let mode = std::fs::metadata(&bootstrap).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "bootstrap in the zip is not executable");
    let tmp = Home::new();
    let mut env = template_environment(&template, &params);
    assert!(env
        .iter()
        .any(|(k, v)| k == "HAKIRI_HOME" && v == "/tmp/hakiri"));
    env.retain(|(k, _)| k != "HAKIRI_HOME");
    let mut cmd = Command::new(&bootstrap);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("HAKIRI_") || name.starts_with("AWS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(emulator.env())
        .envs(env)
        .env("HAKIRI_HOME", tmp.path())
        // The function's role and region, as Lambda sets them.
        .envs(s3_env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut function = cmd.spawn().unwrap();

    let out = script.wait_with_output().unwrap();
    let _ = function.kill();
    let _ = function.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The script's last line is curl's answer (`auth init` and zip talk before it).
    let printed = text(&out.stdout);
    let last = printed.lines().last().unwrap_or_default();
    let answer: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("curl printed no JSON ({e}): {printed}"));
    assert_eq!(
        answer["columns"],
        serde_json::json!(["region", "revenue"]),
        "{answer}"
    );
    assert!(
        answer["rows"].as_array().is_some_and(|r| !r.is_empty()),
        "{answer}"
    );
}
