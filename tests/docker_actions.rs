//! Docker actions against the real Docker Engine, with the local busybox test image.

mod support;

use std::time::Duration;

use miette::Diagnostic;
use rb6::actions::docker::{DockerError, RunSpec};
use support::{docker, docker_cli, test_image, unique_name, ContainerGuard, NetworkGuard};

/// Starts a detached container from the test image running `script` with sh.
fn start_detached(name: &str, extra: &[&str], script: &str) -> ContainerGuard {
    let image = test_image();
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image.as_str(), "sh", "-c", script]);
    docker_cli(&args);
    ContainerGuard(name.to_string())
}

#[tokio::test]
async fn version_reports_engine_and_api() {
    let version = docker().await.version().await.expect("version request");

    assert!(
        !version.version.is_empty(),
        "engine version is empty: {version:?}"
    );
    assert!(
        version.api_version.starts_with("1."),
        "API version is not 1.x: {version:?}"
    );
    assert!(
        !version.client_api_version.is_empty(),
        "negotiated API version is empty: {version:?}"
    );
}

#[tokio::test]
async fn run_once_writes_into_bind_mount() {
    let client = docker().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let name = unique_name("run");
    let _guard = ContainerGuard(name.clone());
    let spec = RunSpec {
        image: test_image(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo \"$GREETING\" > /out/greeting; echo to-stdout; echo to-stderr >&2; exit 3".into(),
        ],
        env: vec![("GREETING".into(), "hello from the container".into())],
        binds: vec![format!("{}:/out", dir.path().display())],
        name: Some(name.clone()),
        timeout: Duration::from_secs(60),
        ..Default::default()
    };

    let output = client.run_once(&spec).await.expect("run_once");

    assert_eq!(output.exit_code, 3, "exit code of the one-shot command");
    assert_eq!(output.stdout, "to-stdout\n", "captured stdout");
    assert_eq!(output.stderr, "to-stderr\n", "captured stderr");
    let written = std::fs::read_to_string(dir.path().join("greeting"))
        .expect("file written by the container");
    assert_eq!(
        written, "hello from the container\n",
        "file content in the bind mount"
    );
    let left = client.inspect_container(&name).await.expect("inspect");
    assert!(left.is_none(), "one-shot container {name} was not removed");
}

#[tokio::test]
async fn run_once_applies_container_settings() {
    let client = docker().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("input"), "read-only input\n").expect("write input");
    let network = unique_name("net");
    docker_cli(&["network", "create", &network]);
    let _network_guard = NetworkGuard(network.clone());
    let spec = RunSpec {
        image: test_image(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "id -u; pwd; cat /in/input; touch /in/x 2>/dev/null || echo read-only; ip -o -4 addr show eth0 | wc -l".into(),
        ],
        binds: vec![format!("{}:/in:ro", dir.path().display())],
        network: Some(network.clone()),
        user: Some("1234:1234".into()),
        working_dir: Some("/tmp".into()),
        timeout: Duration::from_secs(60),
        ..Default::default()
    };

    let output = client.run_once(&spec).await.expect("run_once");

    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(output.exit_code, 0, "exit code; stderr: {}", output.stderr);
    assert_eq!(lines.first(), Some(&"1234"), "user id in the container");
    assert_eq!(lines.get(1), Some(&"/tmp"), "working directory");
    assert_eq!(
        lines.get(2),
        Some(&"read-only input"),
        "content of the read-only bind"
    );
    assert_eq!(
        lines.get(3),
        Some(&"read-only"),
        "write to the :ro bind must fail"
    );
    assert_eq!(
        lines.get(4),
        Some(&"1"),
        "container must have an IPv4 address on {network}"
    );
}

#[tokio::test]
async fn run_once_timeout_removes_container() {
    let client = docker().await;
    let name = unique_name("timeout");
    let _guard = ContainerGuard(name.clone());
    let spec = RunSpec {
        image: test_image(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo started; exec sleep 60".into(),
        ],
        name: Some(name.clone()),
        timeout: Duration::from_secs(1),
        ..Default::default()
    };

    let error = client
        .run_once(&spec)
        .await
        .expect_err("run_once must time out");

    assert!(
        matches!(error, DockerError::Timeout { .. }),
        "expected a timeout, got {error:?}"
    );
    assert!(
        error.to_string().contains(&name),
        "timeout error does not name the container: {error}"
    );
    assert!(
        error.to_string().contains("started"),
        "timeout error does not show the output: {error}"
    );
    let left = client.inspect_container(&name).await.expect("inspect");
    assert!(
        left.is_none(),
        "container {name} was not removed after the timeout"
    );
}

#[tokio::test]
async fn run_once_missing_image_never_pulls() {
    let client = docker().await;
    let spec = RunSpec {
        image: "rb6-test/does-not-exist:1".into(),
        command: vec!["true".into()],
        timeout: Duration::from_secs(10),
        ..Default::default()
    };

    let error = client
        .run_once(&spec)
        .await
        .expect_err("missing image must fail");

    assert!(
        matches!(error, DockerError::ImageNotFound { .. }),
        "expected ImageNotFound, got {error:?}"
    );
    assert!(
        error.to_string().contains("rb6-test/does-not-exist:1"),
        "error does not name the image: {error}"
    );
    let help = error
        .help()
        .map(|help| help.to_string())
        .unwrap_or_default();
    assert!(
        help.contains("must exist locally or be pullable"),
        "help does not say how to get the image: {help}"
    );
}

#[tokio::test]
async fn exec_returns_code_and_output() {
    let client = docker().await;
    let name = unique_name("exec");
    let _guard = start_detached(&name, &[], "exec sleep 3600");

    let cmd: Vec<String> = ["sh", "-c", "echo \"$MARK\"; id -u; echo oops >&2; exit 4"]
        .map(String::from)
        .to_vec();
    let env = vec![("MARK".to_string(), "exec-env".to_string())];
    let output = client
        .exec(&name, &cmd, &env, Some("4321"))
        .await
        .expect("exec");

    assert_eq!(output.exit_code, 4, "exit code of the exec");
    assert_eq!(output.stdout, "exec-env\n4321\n", "stdout of the exec");
    assert_eq!(output.stderr, "oops\n", "stderr of the exec");
}

#[tokio::test]
async fn exec_in_missing_container_names_it() {
    let client = docker().await;
    let name = unique_name("absent");

    let error = client
        .exec(&name, &["true".to_string()], &[], None)
        .await
        .expect_err("exec must fail");

    assert!(
        matches!(error, DockerError::ContainerNotFound { .. }),
        "expected ContainerNotFound, got {error:?}"
    );
    assert!(
        error.to_string().contains(&name),
        "error does not name the container: {error}"
    );
}

#[tokio::test]
async fn stop_start_restart_change_state() {
    let client = docker().await;
    let name = unique_name("lifecycle");
    let _guard = start_detached(
        &name,
        &[],
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    );
    let started_at = || docker_cli(&["inspect", "-f", "{{.State.StartedAt}}", &name]);
    let running =
        |info: Option<rb6::actions::docker::ContainerInfo>| info.expect("container exists").running;

    client
        .stop(&name, Duration::from_secs(5))
        .await
        .expect("stop");
    assert!(
        !running(client.inspect_container(&name).await.expect("inspect")),
        "container runs after stop"
    );

    client
        .stop(&name, Duration::from_secs(5))
        .await
        .expect("stopping a stopped container succeeds");
    client.start(&name).await.expect("start");
    assert!(
        running(client.inspect_container(&name).await.expect("inspect")),
        "container stopped after start"
    );

    let before = started_at();
    client
        .restart(&name, Duration::from_secs(5))
        .await
        .expect("restart");
    assert!(
        running(client.inspect_container(&name).await.expect("inspect")),
        "container stopped after restart"
    );
    assert_ne!(started_at(), before, "restart did not start a new process");
}

#[tokio::test]
async fn logs_tail_returns_last_lines() {
    let client = docker().await;
    let name = unique_name("logs");
    let _guard = start_detached(
        &name,
        &[],
        "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.2; echo problem >&2; exec sleep 3600",
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    let tail = client.logs_tail(&name, 3).await.expect("logs_tail");

    assert_eq!(
        tail, "line4\nline5\nproblem\n",
        "last three log lines, stderr included"
    );
}

#[tokio::test]
async fn inspect_reports_networks_ports_and_health() {
    let client = docker().await;
    let name = unique_name("inspect");
    let network = unique_name("net");
    docker_cli(&["network", "create", &network]);
    let _network_guard = NetworkGuard(network.clone());
    let _guard = start_detached(
        &name,
        &[
            "--network",
            &network,
            "-p",
            "127.0.0.1::8080",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
        ],
        "exec sleep 3600",
    );

    let info = client
        .inspect_container(&name)
        .await
        .expect("inspect")
        .expect("container exists");

    assert!(info.running, "container is not running: {info:?}");
    assert_eq!(info.image, test_image(), "image of the container");
    assert_eq!(info.networks.len(), 1, "networks: {:?}", info.networks);
    assert_eq!(info.networks[0].0, network, "network name");
    assert!(
        info.networks[0].1.parse::<std::net::Ipv4Addr>().is_ok(),
        "IPv4 address: {:?}",
        info.networks
    );
    assert_eq!(
        info.published_ports.len(),
        1,
        "published ports: {:?}",
        info.published_ports
    );
    assert!(
        info.published_ports[0].starts_with("8080/tcp -> 127.0.0.1:"),
        "published port: {:?}",
        info.published_ports
    );
    let health = info.health.as_deref();
    assert!(
        matches!(health, Some("starting" | "healthy")),
        "health status: {health:?}"
    );
}

#[tokio::test]
async fn inspect_missing_container_is_none() {
    let info = docker()
        .await
        .inspect_container(&unique_name("absent"))
        .await
        .expect("inspect");

    assert!(
        info.is_none(),
        "a missing container must inspect as None: {info:?}"
    );
}

#[tokio::test]
async fn remove_container_reports_absence() {
    let client = docker().await;
    let name = unique_name("remove");
    let _guard = start_detached(&name, &[], "exec sleep 3600");

    let refused = client.remove_container(&name, false).await;
    assert!(
        matches!(refused, Err(DockerError::Container { .. })),
        "removing a running container without force: {refused:?}"
    );

    assert!(
        client
            .remove_container(&name, true)
            .await
            .expect("forced removal"),
        "forced removal reports removed"
    );
    assert!(
        !client
            .remove_container(&name, true)
            .await
            .expect("second removal"),
        "second removal reports absent"
    );
}

#[tokio::test]
async fn remove_image_removes_throwaway_tag() {
    let client = docker().await;
    let image = test_image();
    let throwaway = format!("rb6-test/throwaway:{}", std::process::id());
    docker_cli(&["tag", &image, &throwaway]);

    assert!(
        client.image_exists(&throwaway).await.expect("image_exists"),
        "tagged copy exists"
    );
    assert!(
        client
            .remove_image(&throwaway, false)
            .await
            .expect("remove_image"),
        "removal reports removed"
    );
    assert!(
        !client.image_exists(&throwaway).await.expect("image_exists"),
        "tag still exists after removal"
    );
    assert!(
        !client
            .remove_image(&throwaway, false)
            .await
            .expect("second removal"),
        "second removal reports absent"
    );
    assert!(
        client.image_exists(&image).await.expect("image_exists"),
        "the original image must survive"
    );
}

#[tokio::test]
async fn connect_over_tcp_url_names_endpoint() {
    let error = rb6::actions::docker::DockerClient::connect(Some("tcp://127.0.0.1:1"))
        .await
        .expect_err("nothing listens on port 1");

    assert!(
        matches!(error, DockerError::Connect { .. }),
        "expected Connect, got {error:?}"
    );
    assert!(
        error.to_string().contains("127.0.0.1:1"),
        "error does not name the endpoint: {error}"
    );
}
