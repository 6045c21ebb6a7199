//! Docker Engine client for runbook actions: one-shot containers, exec, lifecycle, logs,
//! inspection and removal, over the Engine API through bollard.
//!
//! Invariants: the client negotiates the API version with the engine on connect, so engines older
//! than bollard's default API version (Docker 20.10 serves API 1.41) work. No function pulls an
//! image: an image must already exist locally, because runbooks may run where no registry is
//! reachable. `run_once` removes its container whether the command succeeds, fails or times out.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptionsBuilder, LogsOptions, RemoveContainerOptions, RemoveImageOptions,
    RestartContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

/// Unix socket used when no engine URL is given.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Extra time granted to an Engine API request beyond the stop timeout it carries, because
/// bollard applies one timeout to every request and a stop may take the whole grace period.
const REQUEST_MARGIN: Duration = Duration::from_secs(60);

/// Default timeout of Engine API requests, as in bollard.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors of Docker actions. Each names the container or image and carries the engine's message.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DockerError {
    /// The URL scheme is neither unix:// nor tcp://.
    #[error("invalid Docker Engine URL {url:?}: expected unix:///PATH or tcp://HOST:PORT")]
    #[diagnostic(code(rb6::docker::invalid_url))]
    InvalidUrl { url: String },

    /// The engine could not be reached or failed the version request.
    #[error("cannot connect to the Docker Engine at {endpoint}: {message}")]
    #[diagnostic(
        code(rb6::docker::connect),
        help("start the Docker daemon, or pass the engine URL (unix:///PATH or tcp://HOST:PORT)")
    )]
    Connect { endpoint: String, message: String },

    /// The image is not present in the engine's local image store.
    #[error("image {image} not found in the local image store of the Docker Engine")]
    #[diagnostic(
        code(rb6::docker::image_not_found),
        help(
            "the image must exist locally or be pullable by you beforehand: rb6 never pulls \
             images; build, load or pull it first (docker build, docker load, docker pull)"
        )
    )]
    ImageNotFound { image: String },

    /// No container has this name or id.
    #[error("container {container} not found")]
    #[diagnostic(
        code(rb6::docker::container_not_found),
        help("check the name with `docker ps -a`")
    )]
    ContainerNotFound { container: String },

    /// The engine rejected or failed an operation on a container.
    #[error("{operation} of container {container} failed: {message}")]
    #[diagnostic(code(rb6::docker::container))]
    Container {
        operation: &'static str,
        container: String,
        message: String,
    },

    /// The engine rejected or failed an operation on an image.
    #[error("{operation} of image {image} failed: {message}")]
    #[diagnostic(code(rb6::docker::image))]
    Image {
        operation: &'static str,
        image: String,
        message: String,
    },

    /// A one-shot container ran longer than its timeout and was removed.
    #[error("container {container} (image {image}) did not exit within {timeout:?} and was removed; last output: {output_tail}")]
    #[diagnostic(
        code(rb6::docker::timeout),
        help("raise the step's timeout or check why the command hangs")
    )]
    Timeout {
        container: String,
        image: String,
        timeout: Duration,
        output_tail: String,
    },

    /// The engine failed a request that concerns no single container or image.
    #[error("Docker Engine request {operation} failed: {message}")]
    #[diagnostic(code(rb6::docker::engine))]
    Engine {
        operation: &'static str,
        message: String,
    },
}

/// Versions reported by the engine, for `rb6 doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// Engine release, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// Highest API version the engine serves, e.g. `1.41`.
    pub api_version: String,
    /// API version this client speaks after negotiation.
    pub client_api_version: String,
}

/// A command to run in a fresh container that is removed afterwards.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// Image reference, which must exist locally.
    pub image: String,
    /// Command and arguments. An empty list keeps the image's default command.
    pub command: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// Bind mounts in Docker's `host:container[:ro]` form.
    pub binds: Vec<String>,
    /// Network to attach the container to, or `None` for the default bridge.
    pub network: Option<String>,
    /// User (`name`, `uid` or `uid:gid`) to run the command as.
    pub user: Option<String>,
    /// Container name, or `None` to let the engine pick one.
    pub name: Option<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// Maximum run time before the container is killed and removed.
    pub timeout: Duration,
}

/// Exit code and captured output of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code of the process.
    pub exit_code: i64,
    /// Everything the process wrote to stdout, decoded as lossy UTF-8.
    pub stdout: String,
    /// Everything the process wrote to stderr, decoded as lossy UTF-8.
    pub stderr: String,
}

/// State of a container as `inspect_container` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Image reference the container was created from.
    pub image: String,
    /// Whether the container's process is running.
    pub running: bool,
    /// Health status (`starting`, `healthy`, `unhealthy`) when the image defines a health check.
    pub health: Option<String>,
    /// Networks the container is attached to, as (network name, IPv4 address), sorted by name.
    pub networks: Vec<(String, String)>,
    /// Published ports as `PORT/PROTO -> HOST_IP:HOST_PORT`, sorted.
    pub published_ports: Vec<String>,
}

/// Connection to one Docker Engine.
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
    endpoint: String,
}

impl DockerClient {
    /// Connects to the engine at `url` (`None` = the local socket /var/run/docker.sock,
    /// otherwise `unix://PATH` or `tcp://HOST:PORT`) and negotiates the API version.
    pub async fn connect(url: Option<&str>) -> Result<Self, DockerError> {
        let endpoint = url.unwrap_or(DEFAULT_SOCKET).to_string();
        let timeout = REQUEST_TIMEOUT.as_secs();

        let connected = if endpoint.starts_with("unix://") {
            Docker::connect_with_unix(&endpoint, timeout, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") {
            Docker::connect_with_http(&endpoint, timeout, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(DockerError::InvalidUrl { url: endpoint });
        };
        let connect_error = |error: BollardError| DockerError::Connect {
            endpoint: endpoint.clone(),
            message: engine_message(&error),
        };

        let docker = connected
            .map_err(connect_error)?
            .negotiate_version()
            .await
            .map_err(connect_error)?;
        tracing::debug!(%endpoint, api = %docker.client_version(), "connected to Docker Engine");
        Ok(Self { docker, endpoint })
    }

    /// Returns the engine URL this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queries the engine's release and API versions.
    pub async fn version(&self) -> Result<EngineVersion, DockerError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|error| DockerError::Engine {
                operation: "version",
                message: engine_message(&error),
            })?;

        Ok(EngineVersion {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            client_api_version: self.docker.client_version().to_string(),
        })
    }

    /// Returns whether `reference` exists in the local image store.
    pub async fn image_exists(&self, reference: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(image_error("inspection", reference, &error)),
        }
    }

    /// Pulls an image from its registry, with the engine's own credentials and proxy settings.
    pub async fn pull_image(&self, reference: &str) -> Result<(), DockerError> {
        let options = CreateImageOptionsBuilder::new().from_image(reference).build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            let info = item.map_err(|error| image_error("pull", reference, &error))?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Image { operation: "pull", image: reference.to_string(), message: detail.message.unwrap_or_default() });
            }
        }
        tracing::debug!(image = reference, "pulled image");
        Ok(())
    }

    /// Creates a container from `spec`, starts it, waits for it to exit and returns its exit
    /// code and output. The container is removed in every case, also after a failure or timeout.
    pub async fn run_once(&self, spec: &RunSpec) -> Result<CommandOutput, DockerError> {
        if !self.image_exists(&spec.image).await? {
            return Err(DockerError::ImageNotFound {
                image: spec.image.clone(),
            });
        }

        if let Some(name) = &spec.name {
            self.clear_leftover(name, spec).await?;
        }
        let id = self.create_for_run(spec).await?;
        let label = spec.name.clone().unwrap_or_else(|| short_id(&id));
        tracing::debug!(container = %label, image = %spec.image, "running one-shot container");

        // NOTE: if the caller drops this future mid-run, the container is left behind.
        let outcome = self.start_and_wait(&id, &label, spec).await;

        if let Err(error) = self.remove_container(&id, true).await {
            tracing::warn!(container = %label, %error, "could not remove one-shot container");
        }
        outcome
    }

    /// Runs `cmd` in the running `container` and returns its exit code and output.
    pub async fn exec(
        &self,
        container: &str,
        cmd: &[String],
        env: &[(String, String)],
        user: Option<&str>,
    ) -> Result<CommandOutput, DockerError> {
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            env: Some(env_list(env)),
            user: user.map(str::to_string),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(container, options)
            .await
            .map_err(|error| container_error("exec", container, &error))?;

        let started = self
            .docker
            .start_exec(&created.id, Some(StartExecOptions::default()))
            .await
            .map_err(|error| container_error("exec", container, &error))?;
        let (stdout, stderr) = match started {
            StartExecResults::Attached { output, .. } => collect_output(output)
                .await
                .map_err(|error| container_error("exec output", container, &error))?,
            StartExecResults::Detached => (String::new(), String::new()),
        };

        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|error| container_error("exec inspection", container, &error))?;
        let exit_code = inspected.exit_code.unwrap_or(-1);
        tracing::debug!(%container, exit_code, "exec finished");
        Ok(CommandOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    /// Starts `container`. Starting a running container succeeds.
    pub async fn start(&self, container: &str) -> Result<(), DockerError> {
        self.docker
            .start_container(container, None)
            .await
            .map_err(|error| container_error("start", container, &error))
    }

    /// Stops `container`, killing it after `timeout`. Stopping a stopped container succeeds.
    pub async fn stop(&self, container: &str, timeout: Duration) -> Result<(), DockerError> {
        let options = StopContainerOptions {
            t: Some(seconds(timeout)),
            signal: None,
        };
        self.with_grace(timeout)
            .stop_container(container, Some(options))
            .await
            .map_err(|error| container_error("stop", container, &error))
    }

    /// Restarts `container`, killing it after `timeout` if it does not stop.
    pub async fn restart(&self, container: &str, timeout: Duration) -> Result<(), DockerError> {
        let options = RestartContainerOptions {
            t: Some(seconds(timeout)),
            signal: None,
        };
        self.with_grace(timeout)
            .restart_container(container, Some(options))
            .await
            .map_err(|error| container_error("restart", container, &error))
    }

    /// Removes container `name` (`force` also kills a running one) with its anonymous volumes.
    /// Returns `false` when no such container existed.
    pub async fn remove_container(&self, name: &str, force: bool) -> Result<bool, DockerError> {
        let options = RemoveContainerOptions {
            force,
            v: true,
            link: false,
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(container_error("removal", name, &error)),
        }
    }

    /// Removes image `reference` (`force` also untags it from other references and removes it
    /// while stopped containers use it). Returns `false` when no such image existed.
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<bool, DockerError> {
        let options = RemoveImageOptions {
            force,
            noprune: false,
            platforms: None,
        };
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if status_code(&error) == Some(404) => Ok(false),
            Err(error) => Err(image_error("removal", reference, &error)),
        }
    }

    /// Returns the last `lines` lines of the container's log, stdout and stderr interleaved in
    /// the order the engine recorded them.
    pub async fn logs_tail(&self, container: &str, lines: usize) -> Result<String, DockerError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(container, Some(options));

        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|error| container_error("log retrieval", container, &error))?;
            text.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        }
        Ok(text)
    }

    /// Inspects container `name`, or returns `None` when it does not exist.
    pub async fn inspect_container(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInfo>, DockerError> {
        let inspected = match self.docker.inspect_container(name, None).await {
            Ok(inspected) => inspected,
            Err(error) if status_code(&error) == Some(404) => return Ok(None),
            Err(error) => return Err(container_error("inspection", name, &error)),
        };

        let state = inspected.state.unwrap_or_default();
        let health = state
            .health
            .and_then(|health| health.status)
            .map(|status| status.to_string())
            .filter(|status| !status.is_empty() && status != "none");
        let settings = inspected.network_settings.unwrap_or_default();

        let mut networks: Vec<(String, String)> = settings
            .networks
            .unwrap_or_default()
            .into_iter()
            .map(|(network, endpoint)| (network, endpoint.ip_address.unwrap_or_default()))
            .collect();
        networks.sort();

        let mut published_ports = Vec::new();
        for (port, bindings) in settings.ports.unwrap_or_default() {
            for binding in bindings.unwrap_or_default() {
                let host_ip = binding.host_ip.unwrap_or_default();
                let host_port = binding.host_port.unwrap_or_default();
                published_ports.push(format!("{port} -> {host_ip}:{host_port}"));
            }
        }
        published_ports.sort();

        Ok(Some(ContainerInfo {
            id: inspected.id.unwrap_or_default(),
            image: inspected
                .config
                .and_then(|config| config.image)
                .unwrap_or_default(),
            running: state.running.unwrap_or(false),
            health,
            networks,
            published_ports,
        }))
    }

    async fn create_for_run(&self, spec: &RunSpec) -> Result<String, DockerError> {
        let label = spec.name.clone().unwrap_or_else(|| spec.image.clone());
        let networking_config = spec.network.as_ref().map(|network| NetworkingConfig {
            endpoints_config: Some(
                std::iter::once((network.clone(), EndpointSettings::default())).collect(),
            ),
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(env_list(&spec.env)),
            user: spec.user.clone(),
            working_dir: spec.working_dir.clone(),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                binds: Some(spec.binds.clone()),
                network_mode: spec.network.clone(),
                ..Default::default()
            }),
            networking_config,
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: spec.name.clone(),
            ..Default::default()
        };

        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|error| match status_code(&error) {
                Some(404) => DockerError::ImageNotFound {
                    image: spec.image.clone(),
                },
                _ => container_error("creation", &label, &error),
            })?;
        for warning in &created.warnings {
            tracing::warn!(container = %label, %warning, "Docker Engine warning on container creation");
        }
        Ok(created.id)
    }

    async fn start_and_wait(
        &self,
        id: &str,
        label: &str,
        spec: &RunSpec,
    ) -> Result<CommandOutput, DockerError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|error| container_error("start", label, &error))?;

        let waited = tokio::time::timeout(spec.timeout, self.wait_exit(id, label)).await;

        let (stdout, stderr) = self.read_logs(id, label).await?;
        match waited {
            Ok(exit_code) => Ok(CommandOutput {
                exit_code: exit_code?,
                stdout,
                stderr,
            }),
            Err(_) => Err(DockerError::Timeout {
                container: label.to_string(),
                image: spec.image.clone(),
                timeout: spec.timeout,
                output_tail: tail_lines(&format!("{stdout}{stderr}"), 5),
            }),
        }
    }

    /// Waits for a container left by an interrupted run under this name to stop (within the
    /// run's timeout), then removes it, so a rerun neither conflicts nor races with it.
    async fn clear_leftover(&self, name: &str, spec: &RunSpec) -> Result<(), DockerError> {
        if self.inspect_container(name).await?.is_none() {
            return Ok(());
        }
        tracing::info!(container = %name, "waiting for the container of an interrupted run to stop");
        if tokio::time::timeout(spec.timeout, self.wait_exit(name, name)).await.is_err() {
            tracing::warn!(container = %name, "the leftover container did not stop in time; removing it");
        }
        self.remove_container(name, true).await?;
        Ok(())
    }

    /// Waits until the started container stops and returns its exit code.
    async fn wait_exit(&self, id: &str, label: &str) -> Result<i64, DockerError> {
        let options = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut stream = self.docker.wait_container(id, Some(options));

        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit status as an error that carries the code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(error)) => Err(container_error("wait", label, &error)),
            None => Err(DockerError::Container {
                operation: "wait",
                container: label.to_string(),
                message: "the engine closed the wait stream without an exit status".to_string(),
            }),
        }
    }

    async fn read_logs(&self, id: &str, label: &str) -> Result<(String, String), DockerError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        collect_output(self.docker.logs(id, Some(options)))
            .await
            .map_err(|error| container_error("log retrieval", label, &error))
    }

    fn with_grace(&self, timeout: Duration) -> Docker {
        self.docker
            .clone()
            .with_timeout(REQUEST_TIMEOUT.max(timeout + REQUEST_MARGIN))
    }
}

/// Splits a multiplexed output stream into (stdout, stderr).
async fn collect_output<S>(mut stream: S) -> Result<(String, String), BollardError>
where
    S: futures_util::Stream<Item = Result<bollard::container::LogOutput, BollardError>> + Unpin,
{
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk? {
            bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            other => stdout.extend_from_slice(other.as_ref()),
        }
    }
    Ok((
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    ))
}

fn env_list(env: &[(String, String)]) -> Vec<String> {
    env.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

fn status_code(error: &BollardError) -> Option<u16> {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Returns the engine's own message for server errors and bollard's description otherwise.
fn engine_message(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

fn container_error(operation: &'static str, container: &str, error: &BollardError) -> DockerError {
    match status_code(error) {
        Some(404) if engine_message(error).starts_with("No such container") => {
            DockerError::ContainerNotFound {
                container: container.to_string(),
            }
        }
        _ => DockerError::Container {
            operation,
            container: container.to_string(),
            message: engine_message(error),
        },
    }
}

fn image_error(operation: &'static str, image: &str, error: &BollardError) -> DockerError {
    DockerError::Image {
        operation,
        image: image.to_string(),
        message: engine_message(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_keeps_last_lines() {
        let cases = [("a\nb\nc\n", 2, "b\nc"), ("a", 5, "a"), ("", 3, "")];
        for (text, count, expected) in cases {
            assert_eq!(
                tail_lines(text, count),
                expected,
                "tail of {text:?} with {count} lines"
            );
        }
    }

    #[tokio::test]
    async fn connect_rejects_unknown_scheme() {
        let error = DockerClient::connect(Some("ftp://host")).await.unwrap_err();
        assert!(
            matches!(error, DockerError::InvalidUrl { .. }),
            "expected InvalidUrl, got {error:?}"
        );
    }

    #[tokio::test]
    async fn connect_names_missing_socket() {
        let error = DockerClient::connect(Some("unix:///nonexistent/docker.sock"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/docker.sock"),
            "error does not name the socket: {error}"
        );
    }
}
