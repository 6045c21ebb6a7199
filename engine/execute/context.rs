//! The execution context shared by every running step: runbook, scope, store, engines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::OnceCell;

use crate::actions::compose::ComposeTool;
use crate::actions::docker::DockerClient;
use crate::interpolate::{Mode, Scope};
use crate::model::{ConnectionKind, SecretSource};
use crate::report::Reporter;
use crate::schema::ArgType;
use crate::state::records::{Record, State};
use crate::state::store::Store;
use crate::LoadedRunbook;

/// The operator's choices on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Maximum steps running at once.
    pub parallelism: usize,
    /// Manual steps confirmed with `--confirm STEP`.
    pub confirm: BTreeSet<String>,
    /// `--confirm-all`: every manual step is confirmed.
    pub confirm_all: bool,
    /// `--retry-interrupted`: rerun interrupted steps that have no check probe.
    pub retry_interrupted: bool,
    /// `--force`: undo file edits even when the file changed since.
    pub force: bool,
    /// `--target STEP` for undo.
    pub target: Option<usize>,
}

/// Everything a running step needs, shared between concurrent steps.
pub struct Context {
    pub loaded: LoadedRunbook,
    pub reporter: Reporter,
    pub options: Options,
    /// Shared copy-on-write: a step takes a cheap handle, and adding captures copies the
    /// scope only while some running step still holds the previous one.
    scope: RwLock<Arc<Scope>>,
    /// The writable store; `None` for read-only use (`plan --refresh`), with `state` kept in memory.
    store: Mutex<Option<Store>>,
    read_only_state: Mutex<State>,
    /// Docker clients by connection name; `""` is the default engine.
    docker: tokio::sync::Mutex<BTreeMap<String, Arc<OnceCell<DockerClient>>>>,
    compose: OnceCell<ComposeTool>,
}

impl Context {
    /// Creates the context; secrets are prepared separately by [`Context::prepare_secrets`].
    pub fn new(loaded: LoadedRunbook, scope: Scope, store: Store, reporter: Reporter, options: Options) -> Arc<Context> {
        Context::build(loaded, scope, Some(store), State::default(), reporter, options)
    }

    /// Creates a context that records nothing, over a state held in memory.
    pub fn read_only(loaded: LoadedRunbook, scope: Scope, state: State, reporter: Reporter) -> Arc<Context> {
        Context::build(loaded, scope, None, state, reporter, Options { parallelism: 1, ..Options::default() })
    }

    fn build(loaded: LoadedRunbook, scope: Scope, store: Option<Store>, state: State, reporter: Reporter, options: Options) -> Arc<Context> {
        Arc::new(Context {
            loaded,
            reporter,
            options,
            scope: RwLock::new(Arc::new(scope)),
            store: Mutex::new(store),
            read_only_state: Mutex::new(state),
            docker: tokio::sync::Mutex::new(BTreeMap::new()),
            compose: OnceCell::new(),
        })
    }

    /// Appends a record to the journal durably.
    pub fn record(&self, record: Record) -> Result<(), String> {
        let mut store = self.store.lock().expect("store lock");
        match store.as_mut() {
            Some(store) => store.append(record).map_err(|error| format!("can't write the state journal: {error}")),
            None => {
                self.read_only_state.lock().expect("state lock").apply(&record);
                Ok(())
            }
        }
    }

    /// Returns a copy of the current state; costs time in the number of steps, so per-step
    /// code uses [`Context::with_state`] instead.
    pub fn state(&self) -> State {
        self.with_state(State::clone)
    }

    /// Runs `read` on the current state without copying it; records wait until it returns.
    pub fn with_state<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        match self.store.lock().expect("store lock").as_ref() {
            Some(store) => read(store.state()),
            None => read(&self.read_only_state.lock().expect("state lock")),
        }
    }

    /// Writes a snapshot and starts a fresh journal.
    pub fn compact(&self) -> Result<(), String> {
        match self.store.lock().expect("store lock").as_mut() {
            Some(store) => store.compact().map_err(|error| error.to_string()),
            None => Ok(()),
        }
    }

    /// Returns the state directory's path.
    pub fn state_dir(&self) -> std::path::PathBuf {
        match self.store.lock().expect("store lock").as_ref() {
            Some(store) => store.dir().path().to_path_buf(),
            None => std::env::temp_dir(),
        }
    }

    /// Returns the marker that tags the processes of a step in this state directory.
    pub fn step_marker(&self, step: &str) -> String {
        super::leftovers::marker(&self.state_dir(), step)
    }

    /// Kills processes left running by an interrupted earlier run of a step.
    pub fn kill_leftovers(&self, step: &str) {
        let killed = super::leftovers::kill_marked(&self.step_marker(step));
        if killed > 0 {
            self.reporter.line(&format!("stopped {killed} process(es) left running by the interrupted run of \"{step}\""));
        }
    }

    /// Returns the current scope (variables, secrets, captures so far), shared, not copied.
    pub fn scope(&self) -> Arc<Scope> {
        self.scope.read().expect("scope lock").clone()
    }

    /// Adds captured values to the scope, registering sensitive ones for redaction.
    pub fn add_captures(&self, captures: &BTreeMap<String, String>) {
        if captures.is_empty() {
            return;
        }
        let mut guard = self.scope.write().expect("scope lock");
        let scope = Arc::make_mut(&mut guard);
        for (name, value) in captures {
            if scope.sensitive_captures.contains(name) {
                self.reporter.add_secrets([value]);
            }
            scope.captures.insert(name.clone(), value.clone());
        }
    }

    /// Generates secrets not in the state yet and reads env and file secrets.
    pub fn prepare_secrets(&self) -> Result<(), String> {
        let state = self.state();
        for secret in &self.loaded.runbook.secrets {
            let value = match &secret.source {
                SecretSource::Generate { length, alphabet } => match state.secrets.get(&secret.name) {
                    Some(value) => value.clone(),
                    None => {
                        let value = generate_secret(*length, alphabet);
                        self.record(Record::SecretGenerated { name: secret.name.clone(), value: value.clone() })?;
                        value
                    }
                },
                SecretSource::Env(variable) => std::env::var(variable).map_err(|_| format!("secret `{}` reads environment variable {variable}, which is not set", secret.name))?,
                SecretSource::File(path) => {
                    let path = self.scope().render(path, ArgType::Text, Mode::Execute).map_err(|error| error.to_string())?;
                    let text = std::fs::read_to_string(&path).map_err(|error| format!("secret `{}` can't be read from {path}: {error}", secret.name))?;
                    text.trim().to_string()
                }
            };
            self.reporter.add_secrets([&value]);
            Arc::make_mut(&mut self.scope.write().expect("scope lock")).secrets.insert(secret.name.clone(), value);
        }
        Ok(())
    }

    /// Returns the Docker client of the runbook's first `docker` connection, or the local engine.
    pub async fn docker(&self) -> Result<DockerClient, String> {
        self.docker_named(None).await
    }

    /// Returns the Docker client of the named `docker` connection (`None`: the runbook's first
    /// one, or the local engine when it declares none), connecting once per connection. The
    /// client is a cheap clone sharing one connection pool.
    pub async fn docker_named(&self, name: Option<&str>) -> Result<DockerClient, String> {
        let key = name.unwrap_or("").to_string();
        let cell = self.docker.lock().await.entry(key).or_default().clone();
        let client = cell
            .get_or_try_init(|| async {
                let url = self.docker_url(name)?;
                DockerClient::connect(url.as_deref()).await.map_err(|error| error.to_string())
            })
            .await?;
        Ok(client.clone())
    }

    fn docker_url(&self, name: Option<&str>) -> Result<Option<String>, String> {
        let mut connections = self.loaded.runbook.connections.iter().filter(|connection| connection.kind == ConnectionKind::Docker);
        let connection = match name {
            Some(name) => Some(connections.find(|connection| connection.name == name).ok_or_else(|| format!("unknown docker connection `{name}`"))?),
            None => connections.next(),
        };
        let Some(connection) = connection else { return Ok(None) };
        match connection.args.get("url") {
            Some(url) => self.scope().render_text(url, ArgType::Text, Mode::Execute).map(Some).map_err(|error| error.to_string()),
            None => Ok(None),
        }
    }

    /// Returns the compose tool, detecting it once.
    pub async fn compose(&self) -> Result<&ComposeTool, String> {
        self.compose.get_or_try_init(|| async { ComposeTool::detect().await.map_err(|error| error.to_string()) }).await
    }
}

/// Generates a random secret from the alphabet with the operating system's CSPRNG-seeded generator.
pub fn generate_secret(length: usize, alphabet: &str) -> String {
    use rand::Rng;
    let characters: Vec<char> = alphabet.chars().collect();
    let mut generator = rand::rng();
    (0..length).map(|_| characters[generator.random_range(0..characters.len())]).collect()
}
