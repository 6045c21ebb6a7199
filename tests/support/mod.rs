//! Shared setup of the integration tests: the local busybox image, the Docker Engine client,
//! the test PostgreSQL servers and unique names for the resources each test creates.
//!
//! Invariant: a missing Docker Engine or PostgreSQL server fails the test with a message that
//! names what to start. No test skips itself.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rb6::actions::docker::DockerClient;

/// Password of the superuser `rb6` in both test servers, as set by the start scripts.
pub const PG_PASSWORD: &str = "rb6-test-password";

/// URL of the server that tests/support/start-postgres.sh starts.
pub const DEFAULT_PG_URL: &str = "postgres://rb6:rb6-test-password@127.0.0.1:54329/postgres";

/// Container and network that tests/support/start-pg-container.sh starts.
pub const PG_CONTAINER: &str = "rb6-test-pg";
pub const PG_NETWORK: &str = "rb6-test-net";

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

/// Runs a support script and returns its trimmed stdout, panicking with its stderr on failure.
pub fn run_script(name: &str) -> String {
    let script = support_dir().join(name);
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}); is the Docker daemon running?\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Reference of the local busybox test image, built on first use.
pub fn test_image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| run_script("images.sh")).clone()
}

/// Connects to the Docker Engine at `RB6_TEST_DOCKER_URL`, or at the local socket.
pub async fn docker() -> DockerClient {
    let url = std::env::var("RB6_TEST_DOCKER_URL").ok();
    DockerClient::connect(url.as_deref()).await.unwrap_or_else(|error| {
        panic!("these tests need a running Docker Engine (start dockerd, or set RB6_TEST_DOCKER_URL): {error}")
    })
}

/// URL of the test PostgreSQL server: `RB6_TEST_PG_URL`, or the server of start-postgres.sh.
pub fn pg_url() -> String {
    std::env::var("RB6_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// Connects to the test PostgreSQL server, panicking with what to start when it is not there.
pub async fn pg_client() -> tokio_postgres::Client {
    let target = rb6::actions::postgres::PgTarget::Url(pg_url());
    rb6::actions::postgres::connect("test", &target, None)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "these tests need the test PostgreSQL server: run tests/support/start-postgres.sh \
             (or set RB6_TEST_PG_URL): {error}"
            )
        })
}

/// Starts PostgreSQL in container rb6-test-pg on network rb6-test-net, once per test binary.
pub fn pg_container() -> &'static str {
    static STARTED: OnceLock<String> = OnceLock::new();
    STARTED.get_or_init(|| run_script("start-pg-container.sh"))
}

/// Returns a name `rb6-test-<purpose>-<pid>-<n>` that no other test or test run uses.
pub fn unique_name(purpose: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("rb6-test-{purpose}-{}-{n}", std::process::id())
}

/// Runs the docker CLI for test setup and returns its trimmed stdout; panics on failure.
pub fn docker_cli(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run docker {args:?}: {error}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Removes a container when dropped, so a failed assert does not leave it behind.
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

/// Removes a network when dropped.
pub struct NetworkGuard(pub String);

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}
