//! Compose actions with the installed compose CLI (v2 plugin or v1), on a one-service project
//! that runs the local busybox test image.

mod support;

use std::path::{Path, PathBuf};

use rb6::actions::compose::{ComposeError, ComposeFlavor, ComposeTool};
use support::{docker, test_image, unique_name};

/// A compose project in a temporary directory; `down` runs when it is dropped.
struct Project {
    _dir: tempfile::TempDir,
    path: PathBuf,
    container: String,
}

impl Project {
    fn create() -> Project {
        let name = unique_name("compose");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(&name);
        std::fs::create_dir(&path).expect("project dir");
        let container = format!("{name}-app");
        let compose_file = format!(
            "version: \"2.4\"\n\
             services:\n  \
               app:\n    \
                 image: {image}\n    \
                 container_name: {container}\n    \
                 command: [\"sleep\", \"3600\"]\n    \
                 stop_signal: SIGKILL\n",
            image = test_image()
        );
        std::fs::write(path.join("docker-compose.yml"), compose_file).expect("write compose file");
        Project {
            _dir: dir,
            path,
            container,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let tool = if std::process::Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            vec!["docker", "compose"]
        } else {
            vec!["docker-compose"]
        };
        let _ = std::process::Command::new(tool[0])
            .args(&tool[1..])
            .args(["down", "-t", "0"])
            .current_dir(&self.path)
            .output();
    }
}

async fn tool() -> ComposeTool {
    ComposeTool::detect()
        .await
        .unwrap_or_else(|error| panic!("these tests need Docker Compose: {error}"))
}

#[tokio::test]
async fn detect_describes_tool_and_version() {
    let tool = tool().await;

    let description = tool.describe();
    assert!(
        description.contains(&tool.version),
        "description lacks the version: {description}"
    );
    assert!(
        tool.version
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()),
        "version: {:?}",
        tool.version
    );
    let expected_name = match tool.flavor {
        ComposeFlavor::V2Plugin => "docker compose",
        ComposeFlavor::V1Standalone => "docker-compose",
    };
    assert!(
        description.starts_with(expected_name),
        "description: {description}"
    );
    assert_eq!(
        ComposeTool::detect().await.expect("second detect"),
        tool,
        "detection result is cached"
    );
}

#[tokio::test]
async fn up_restart_stop_rm_service() {
    let tool = tool().await;
    let docker = docker().await;
    let project = Project::create();
    let running = |info: Option<rb6::actions::docker::ContainerInfo>| info.map(|info| info.running);

    tool.up(project.path(), "app").await.expect("up");
    let state = running(
        docker
            .inspect_container(&project.container)
            .await
            .expect("inspect"),
    );
    assert_eq!(state, Some(true), "service container runs after up");

    tool.restart(project.path(), "app").await.expect("restart");
    let state = running(
        docker
            .inspect_container(&project.container)
            .await
            .expect("inspect"),
    );
    assert_eq!(state, Some(true), "service container runs after restart");

    tool.stop(project.path(), "app").await.expect("stop");
    let state = running(
        docker
            .inspect_container(&project.container)
            .await
            .expect("inspect"),
    );
    assert_eq!(
        state,
        Some(false),
        "service container is stopped after stop"
    );

    tool.rm(project.path(), "app").await.expect("rm");
    let state = running(
        docker
            .inspect_container(&project.container)
            .await
            .expect("inspect"),
    );
    assert_eq!(state, None, "service container is gone after rm");
}

#[tokio::test]
async fn rm_stops_running_service() {
    let tool = tool().await;
    let docker = docker().await;
    let project = Project::create();

    tool.up(project.path(), "app").await.expect("up");
    tool.rm(project.path(), "app")
        .await
        .expect("rm of a running service");

    let info = docker
        .inspect_container(&project.container)
        .await
        .expect("inspect");
    assert!(
        info.is_none(),
        "running service container must be stopped and removed: {info:?}"
    );
}

#[tokio::test]
async fn failure_shows_tool_stderr() {
    let tool = tool().await;
    let project = Project::create();

    let error = tool
        .up(project.path(), "no-such-service")
        .await
        .expect_err("unknown service must fail");

    assert!(
        matches!(error, ComposeError::Failed { .. }),
        "expected Failed, got {error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("no-such-service"),
        "error does not carry the tool's stderr: {text}"
    );
    assert!(
        text.contains("up -d no-such-service"),
        "error does not show the command: {text}"
    );
}
