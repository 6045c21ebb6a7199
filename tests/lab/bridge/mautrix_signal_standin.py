#!/usr/bin/python3
"""TEST STAND-IN for the mautrix-signal bridge binary (not the real bridge).

The lab can't pull dock.mau.dev/mautrix/signal, so this program plays the part of
/usr/bin/mautrix-signal wherever a runbook can see it. It copies the command-line flags, the
files the bridge writes, its database connection and the appservice HTTP API it serves. It also
copies the homeserver requests the bridge makes at startup and its exit codes. The behaviour follows mautrix-go's bridgev2 (mxmain,
bridgeconfig, matrix connector). It bridges nothing to Signal.

Modes, like the real binary:
  -e            write the bridge's real generated default config to -c and exit 0
  -g            write the appservice registration to -r, write the new tokens back into the
                config, exit 0
  (no flag)     connect to the database, serve the appservice API, check the homeserver,
                register the bot user, set its display name, and run until SIGTERM

Exit codes taken from mautrix-go: 10 config unreadable, 11 config invalid, 13 homeserver ->
bridge ping failed, 15 database failed, 16 homeserver rejected the as_token, 17 whoami returned
another user, 20 homeserver.domain not set, 21 registration not saved, 22 config not saved.
"""

import argparse
import json
import os
import re
import secrets
import signal
import sqlite3
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import yaml

NAME = "mautrix-signal"
VERSION = "v0.2603.0"
DEFAULT_CONFIG_PATH = "/opt/mautrix-signal-standin/default-config.yaml"
DATABASE_OWNER = "megabridge/" + NAME

# Placeholders of the generated default config. mautrix-go rejects a config that still has them.
UNSET_TOKEN = "This value is generated when generating the registration"
UNSET_DATABASE_URI = "postgres://user:password@host/database?sslmode=disable"

CONNECT_RETRY_SECONDS = 10
PING_RETRY_SECONDS = 5
PING_MAX_RETRIES = 6

ALPHANUMERIC = string.ascii_letters + string.digits

LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3, "fatal": 4}
LEVEL_LABELS = {"debug": "DBG", "info": "INF", "warn": "WRN", "error": "ERR", "fatal": "FTL"}


class Logger:
    """Writes zerolog-style lines to stdout and, if configured, JSON lines to a log file."""

    def __init__(self, min_level="debug", file_path=None):
        self.min_level = LEVELS.get(min_level, 0)
        self.file_path = file_path
        self.lock = threading.Lock()

    def log(self, level, message, **fields):
        if LEVELS[level] < self.min_level:
            return

        now = datetime.now(timezone.utc)
        pretty_fields = " ".join(f"{key}={value}" for key, value in fields.items())
        line = f"{now.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z {LEVEL_LABELS[level]} {message}"
        if pretty_fields:
            line += " " + pretty_fields

        with self.lock:
            print(line, flush=True)
            if self.file_path:
                self._write_json(now, level, message, fields)

    def _write_json(self, now, level, message, fields):
        record = {"level": level, "time": now.isoformat(), "message": message, **fields}
        try:
            os.makedirs(os.path.dirname(self.file_path) or ".", exist_ok=True)
            with open(self.file_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, default=str) + "\n")
        except OSError as error:
            print(f"failed to write log file {self.file_path}: {error}", file=sys.stderr, flush=True)
            self.file_path = None

    def debug(self, message, **fields):
        self.log("debug", message, **fields)

    def info(self, message, **fields):
        self.log("info", message, **fields)

    def warn(self, message, **fields):
        self.log("warn", message, **fields)

    def error(self, message, **fields):
        self.log("error", message, **fields)

    def fatal(self, message, exit_code, **fields):
        self.log("fatal", message, **fields)
        sys.exit(exit_code)


def random_string(length):
    """Return a random alphanumeric string, like go.mau.fi/util/random.String."""
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def load_config(path):
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        print(f"Failed to parse config: {error}", file=sys.stderr)
        sys.exit(10)

    if not isinstance(config, dict):
        print(f"Failed to parse config: {path} is not a YAML mapping", file=sys.stderr)
        sys.exit(10)
    return config


def write_private_file(path, text):
    """Write text to path with mode 0600, like os.WriteFile(path, data, 0600) in the real bridge."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def set_in_section(text, section, key, value):
    """Replace `key: ...` directly under the top-level `section:` of a YAML text, keeping comments.

    Only the first four-space-indented occurrence inside that section changes, which is where the
    generated config keeps each key this program sets.
    """
    lines = text.split("\n")
    in_section = False
    for index, line in enumerate(lines):
        if re.match(r"^\S", line):
            in_section = line.startswith(section + ":")
            continue
        if in_section and re.match(rf"^    {re.escape(key)}:", line):
            lines[index] = f"    {key}: {value}"
            return "\n".join(lines)
    raise KeyError(f"{section}.{key} not found in config")


def write_example_config(config_path):
    if os.path.exists(config_path):
        print(f"{config_path} already exists, please remove it if you want to generate a new example",
              file=sys.stderr)
        sys.exit(1)

    with open(DEFAULT_CONFIG_PATH, encoding="utf-8") as handle:
        write_private_file(config_path, handle.read())
    print("Wrote example config to", config_path)
    sys.exit(0)


def go_regexp_quote(text):
    """Quote text like Go's regexp.QuoteMeta, which leaves '-' and '@' alone, unlike Python's re.escape."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def build_registration(config, as_token, hs_token):
    appservice = config["appservice"]
    domain = config["homeserver"]["domain"]
    encryption = config.get("encryption") or {}
    bot_regex = f"^@{go_regexp_quote(appservice['bot']['username'])}:{go_regexp_quote(domain)}$"
    ghost_regex = go_user_id_regex(config)

    # Key order and optional keys follow mautrix-go's appservice.Registration YAML tags.
    lines = [
        f"id: {appservice['id']}",
        f"url: {appservice['address']}",
        f"as_token: {as_token}",
        f"hs_token: {hs_token}",
        # mautrix-go puts a random sender_localpart in the registration; the bot is a namespace user.
        f"sender_localpart: {random_string(32)}",
        "rate_limited: false",
        "namespaces:",
        "    users:",
        f"        - regex: {yaml_scalar(bot_regex)}",
        "          exclusive: true",
        f"        - regex: {yaml_scalar(ghost_regex)}",
        "          exclusive: true",
    ]
    if appservice.get("ephemeral_events"):
        lines.append("de.sorunome.msc2409.push_ephemeral: true")
        lines.append("push_ephemeral: true")
    if encryption.get("appservice"):
        lines.append("org.matrix.msc3202: true")
    if encryption.get("msc4190"):
        lines.append("io.element.msc4190: true")
    return "\n".join(lines) + "\n"


def go_user_id_regex(config):
    placeholder = random_string(16).lower()
    localpart = config["appservice"]["username_template"].replace("{{.}}", placeholder)
    quoted = go_regexp_quote(f"@{localpart}:{config['homeserver']['domain']}")
    return "^" + quoted.replace(placeholder, ".*", 1) + "$"


def yaml_scalar(value):
    """Render a string the way yaml.v3 does for these regexes: plain unless YAML needs quotes."""
    rendered = yaml.safe_dump(value, default_style=None, width=1000).strip()
    return rendered.removesuffix("\n...").strip()


def generate_registration(config_path, registration_path):
    config = load_config(config_path)
    if config["homeserver"]["domain"] == "example.com":
        print("Homeserver domain is not set", file=sys.stderr)
        sys.exit(20)

    as_token = random_string(64)
    hs_token = random_string(64)
    try:
        write_private_file(registration_path, build_registration(config, as_token, hs_token))
    except OSError as error:
        print("Failed to save registration:", error, file=sys.stderr)
        sys.exit(21)

    try:
        with open(config_path, encoding="utf-8") as handle:
            text = handle.read()
        text = set_in_section(text, "appservice", "as_token", as_token)
        text = set_in_section(text, "appservice", "hs_token", hs_token)
        write_private_file(config_path, text)
    except (OSError, KeyError) as error:
        print("Failed to save config:", error, file=sys.stderr)
        sys.exit(22)

    print("Registration generated. See https://docs.mau.fi/bridges/general/registering-appservices.html "
          "for instructions on installing the registration.")
    sys.exit(0)


def validate_config(config):
    """Return the first problem mautrix-go's validateConfig would report, or None."""
    homeserver = config.get("homeserver") or {}
    appservice = config.get("appservice") or {}
    database = config.get("database") or {}
    permissions = (config.get("bridge") or {}).get("permissions") or {}
    template = appservice.get("username_template", "")

    if homeserver.get("address") == "http://example.localhost:8008":
        return "homeserver.address not configured"
    if homeserver.get("domain") == "example.com":
        return "homeserver.domain not configured"
    if appservice.get("as_token") == UNSET_TOKEN:
        return "appservice.as_token not configured. Did you forget to generate the registration? "
    if appservice.get("hs_token") == UNSET_TOKEN:
        return "appservice.hs_token not configured. Did you forget to generate the registration? "
    if database.get("uri") == UNSET_DATABASE_URI:
        return "database.uri not configured"
    if not permissions or set(permissions) <= {"*", "example.com", "@admin:example.com"}:
        return "bridge.permissions not configured"
    if "{{.}}" not in template:
        return "username template is missing user ID placeholder"
    return None


def upgrade_generated_secrets(config_path, log):
    """Replace `generate` placeholders with random secrets and save, as the real config upgrader does.

    NOTE: the real bridge rewrites the whole file through its config upgrader on every start; this
    stand-in changes only these three lines, and direct_media.server_key stays `generate`.
    """
    with open(config_path, encoding="utf-8") as handle:
        text = handle.read()

    original = text
    for section, key, length in (("provisioning", "shared_secret", 64),
                                 ("public_media", "signing_key", 32),
                                 ("encryption", "pickle_key", 32)):
        pattern = re.compile(rf"^(    {key}:) generate$", re.MULTILINE)
        section_match = re.search(rf"^{section}:\n(?:(?:[ #].*)?\n)*", text, re.MULTILINE)
        if section_match and pattern.search(section_match.group(0)):
            block = pattern.sub(rf"\1 {random_string(length)}", section_match.group(0), count=1)
            text = text[:section_match.start()] + block + text[section_match.end():]

    if text != original:
        write_private_file(config_path, text)
        log.debug("Saved config with generated secrets", path=config_path)


class Database:
    """The bridge database: checks ownership and creates the bookkeeping tables mautrix-go's dbutil creates."""

    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.connection = None

    def open(self):
        db_type = self.config.get("type", "postgres")
        uri = self.config["uri"]
        if db_type == "postgres":
            self.connection = psycopg2.connect(uri, connect_timeout=10)
            self.placeholder = "%s"
        elif db_type in ("sqlite3-fk-wal", "litestream"):
            path = uri.removeprefix("file:").split("?", 1)[0]
            self.connection = sqlite3.connect(path)
            self.placeholder = "?"
        else:
            raise ValueError(f"unsupported database type {db_type!r}: use postgres or sqlite3-fk-wal")

    def upgrade(self):
        cursor = self.connection.cursor()
        tables = self._table_names(cursor)

        if "database_owner" in tables:
            cursor.execute("SELECT owner FROM database_owner WHERE key=0")
            row = cursor.fetchone()
            if row and row[0] != DATABASE_OWNER:
                raise RuntimeError(f"database is owned by {row[0]!r}, not {DATABASE_OWNER!r}: "
                                   "Sharing the same database with different programs is not supported")
        elif tables:
            raise RuntimeError(f"database contains foreign tables ({', '.join(sorted(tables)[:5])}): "
                               "use an empty database for the bridge")

        cursor.execute("CREATE TABLE IF NOT EXISTS database_owner "
                       "(key INTEGER PRIMARY KEY DEFAULT 0, owner TEXT NOT NULL)")
        cursor.execute("CREATE TABLE IF NOT EXISTS version (version INTEGER, compat INTEGER)")
        cursor.execute("CREATE TABLE IF NOT EXISTS kv_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        cursor.execute("SELECT COUNT(*) FROM database_owner")
        if cursor.fetchone()[0] == 0:
            cursor.execute(f"INSERT INTO database_owner (key, owner) VALUES (0, {self.placeholder})",
                           (DATABASE_OWNER,))
        cursor.execute("SELECT COUNT(*) FROM version")
        if cursor.fetchone()[0] == 0:
            cursor.execute("INSERT INTO version (version, compat) VALUES (1, 1)")
        self.connection.commit()

    def _table_names(self, cursor):
        if self.placeholder == "%s":
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {row[0] for row in cursor.fetchall()}


class HomeserverError(Exception):
    """A Matrix error response from the homeserver."""

    def __init__(self, status, errcode, error):
        super().__init__(f"{errcode} (HTTP {status}): {error}")
        self.status = status
        self.errcode = errcode


class Homeserver:
    """A Matrix client-server API client that authenticates with the appservice's as_token."""

    def __init__(self, address, as_token, bot_user_id):
        self.address = address.rstrip("/")
        self.as_token = as_token
        self.bot_user_id = bot_user_id

    def request(self, method, path, body=None, masquerade=True):
        query = "?" + urllib.parse.urlencode({"user_id": self.bot_user_id}) if masquerade else ""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.address + path + query, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.as_token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")

        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = {"errcode": "M_UNKNOWN", "error": payload.decode(errors="replace")[:200]}
            raise HomeserverError(error.code, parsed.get("errcode", "M_UNKNOWN"), parsed.get("error", "")) from None


class AppserviceHandler(BaseHTTPRequestHandler):
    """Serves the appservice API that the homeserver calls, checking the hs_token."""

    server_version = "mautrix-signal-standin"
    bridge = None

    def log_message(self, format, *args):
        self.bridge.log.debug("HTTP request", method=self.command, path=self.path.split("?")[0])

    def send_json(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def hs_token_valid(self):
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if token is None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            token = (query.get("access_token") or [None])[0]
        return token is not None and secrets.compare_digest(token, self.bridge.hs_token)

    def route(self):
        path = urllib.parse.urlparse(self.path).path
        if path in ("/_matrix/mau/live", "/_matrix/mau/ready"):
            return self.send_json(200, {"ok": True})

        if not path.startswith("/_matrix/app/"):
            return self.send_json(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized endpoint"})
        if not self.hs_token_valid():
            return self.send_json(403, {"errcode": "M_FORBIDDEN", "error": "Bad token supplied"})

        if self.command == "PUT" and re.fullmatch(r"/_matrix/app/v1/transactions/[^/]+", path):
            body = self.read_json()
            events = len((body or {}).get("events", []))
            self.bridge.log.debug("Received transaction", txn_id=path.rsplit("/", 1)[1], event_count=events)
            return self.send_json(200, {})
        if self.command == "POST" and path == "/_matrix/app/v1/ping":
            body = self.read_json() or {}
            self.bridge.log.debug("Received ping from homeserver", txn_id=body.get("transaction_id"))
            return self.send_json(200, {})
        if self.command == "GET" and re.fullmatch(r"/_matrix/app/v1/(users|rooms)/[^/]+", path):
            return self.send_json(404, {"errcode": "M_NOT_FOUND", "error": "Not found"})
        return self.send_json(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized endpoint"})

    do_GET = do_PUT = do_POST = do_DELETE = route


class Bridge:
    """The running bridge: database, appservice HTTP listener and homeserver checks."""

    def __init__(self, config_path, config, log):
        self.config_path = config_path
        self.config = config
        self.log = log
        appservice = config["appservice"]
        self.hs_token = appservice["hs_token"]
        self.bot_user_id = f"@{appservice['bot']['username']}:{config['homeserver']['domain']}"
        self.homeserver = Homeserver(config["homeserver"]["address"], appservice["as_token"], self.bot_user_id)
        self.stopped = threading.Event()

    def run(self):
        self.log.info("Initializing bridge", name=NAME, version=VERSION + " (test stand-in)")
        self.init_database()
        self.start_listener()

        self.log.debug("Checking connection to homeserver")
        self.ensure_connection()
        self.ensure_appservice_connection()
        self.ensure_bot_registered()
        self.update_bot_profile()
        self.log.info("Bridge started", bot_user_id=self.bot_user_id)

        signal.signal(signal.SIGTERM, lambda *_: self.stopped.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopped.set())
        self.stopped.wait()
        self.log.info("Interrupt signal received from OS")
        self.log.info("Bridge stopped")

    def init_database(self):
        self.log.debug("Initializing database connection")
        database = Database(self.config["database"], self.log)
        try:
            database.open()
            database.upgrade()
        except (psycopg2.Error, sqlite3.Error, RuntimeError, ValueError) as error:
            message = str(error).strip().replace("\n", " ")
            self.log.fatal("Failed to initialize database", 15, error=message, db_section="main")
        self.log.info("Database is ready", db_type=self.config["database"].get("type", "postgres"))
        self.database = database

    def start_listener(self):
        appservice = self.config["appservice"]
        host, port = appservice["hostname"], int(appservice["port"])
        AppserviceHandler.bridge = self
        try:
            server = ThreadingHTTPServer((host, port), AppserviceHandler)
        except OSError as error:
            self.log.fatal("Failed to start appservice HTTP server", 23, address=f"{host}:{port}", error=error)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.log.info("Starting HTTP listener", address=f"{host}:{port}")

    def log_initial_request_error(self, error, default_message):
        if isinstance(error, HomeserverError) and error.errcode == "M_UNKNOWN_TOKEN":
            self.log.fatal("The as_token was not accepted. Is the registration file installed in your "
                           "homeserver correctly?", 16)
        if isinstance(error, HomeserverError) and error.errcode == "M_EXCLUSIVE":
            self.log.fatal("The as_token was accepted, but the /register request was not. Are the homeserver "
                           "domain, bot username and username template in the config correct, and do they "
                           "match the values in the registration?", 16)
        self.log.fatal(default_message, 16, error=error)

    def ensure_connection(self):
        tried_to_register = False
        while True:
            try:
                versions = self.homeserver.request("GET", "/_matrix/client/versions")
                break
            except HomeserverError as error:
                if error.errcode == "M_FORBIDDEN" and not tried_to_register:
                    self.log.debug("M_FORBIDDEN in /versions, trying to register before retrying")
                    try:
                        self.register_bot()
                    except HomeserverError as register_error:
                        self.log_initial_request_error(
                            register_error, "Failed to register after /versions failed with M_FORBIDDEN")
                    tried_to_register = True
                elif error.errcode in ("M_UNKNOWN_TOKEN", "M_EXCLUSIVE"):
                    self.log_initial_request_error(error, "/versions request failed with auth error")
                else:
                    self.log.error("Failed to connect to homeserver, retrying in 10 seconds...", error=error)
                    time.sleep(CONNECT_RETRY_SECONDS)
            except (urllib.error.URLError, OSError) as error:
                self.log.error("Failed to connect to homeserver, retrying in 10 seconds...", error=error)
                time.sleep(CONNECT_RETRY_SECONDS)

        self.log.debug("Homeserver versions", versions=",".join(versions.get("versions", [])))
        try:
            whoami = self.homeserver.request("GET", "/_matrix/client/v3/account/whoami")
        except (HomeserverError, urllib.error.URLError, OSError) as error:
            self.log_initial_request_error(error, "/whoami request failed with unknown error")
        if whoami.get("user_id") != self.bot_user_id:
            self.log.fatal("Unexpected user ID in whoami call", 17,
                           got_user_id=whoami.get("user_id"), expected_user_id=self.bot_user_id)

    def ensure_appservice_connection(self):
        """Ask the homeserver to ping this appservice (MSC2659), retrying like mautrix-go."""
        path = f"/_matrix/client/v1/appservice/{urllib.parse.quote(self.config['appservice']['id'])}/ping"
        for attempt in range(PING_MAX_RETRIES + 1):
            txn_id = "mautrix-go_" + random_string(12)
            try:
                response = self.homeserver.request("POST", path, {"transaction_id": txn_id})
                self.log.debug("Homeserver -> appservice connection works",
                               txn_id=txn_id, duration_ms=response.get("duration_ms"))
                return
            except (HomeserverError, urllib.error.URLError, OSError) as error:
                if attempt == PING_MAX_RETRIES:
                    self.log.fatal("Homeserver -> appservice connection is not working", 13,
                                   txn_id=txn_id, error=error)
                self.log.error("Homeserver -> appservice connection is not working, retrying in 5 seconds...",
                               txn_id=txn_id, error=error)
                time.sleep(PING_RETRY_SECONDS)

    def register_bot(self):
        localpart = self.config["appservice"]["bot"]["username"]
        # Like mautrix-go's IntentAPI.Register; Synapse rejects appservice logins when MSC4190 is on.
        body = {"type": "m.login.application_service", "username": localpart, "inhibit_login": True}
        try:
            self.homeserver.request("POST", "/_matrix/client/v3/register", body, masquerade=False)
            self.log.info("Registered bot user", user_id=self.bot_user_id)
        except HomeserverError as error:
            if error.errcode != "M_USER_IN_USE":
                raise
            self.log.debug("Bot user is already registered", user_id=self.bot_user_id)

    def ensure_bot_registered(self):
        try:
            self.register_bot()
        except (HomeserverError, urllib.error.URLError, OSError) as error:
            self.log_initial_request_error(error, "Failed to register bot user")

    def update_bot_profile(self):
        self.log.debug("Updating bot profile")
        displayname = self.config["appservice"]["bot"].get("displayname") or ""
        if not displayname:
            return

        path = f"/_matrix/client/v3/profile/{urllib.parse.quote(self.bot_user_id)}/displayname"
        value = "" if displayname == "remove" else displayname
        try:
            self.homeserver.request("PUT", path, {"displayname": value})
        except (HomeserverError, urllib.error.URLError, OSError) as error:
            self.log.warn("Failed to update bot displayname", error=error)


def file_log_path(config):
    for writer in (config.get("logging") or {}).get("writers") or []:
        if writer.get("type") == "file" and writer.get("filename"):
            return writer["filename"]
    return None


def run_bridge(config_path):
    config = load_config(config_path)
    logging_config = config.get("logging") or {}
    log = Logger(logging_config.get("min_level", "debug"), file_log_path(config))

    problem = validate_config(config)
    if problem:
        log.log("fatal", "Configuration error", error=problem)
        log.info("See https://docs.mau.fi/faq/field-unconfigured for more info")
        sys.exit(11)

    upgrade_generated_secrets(config_path, log)
    Bridge(config_path, config, log).run()


def main():
    parser = argparse.ArgumentParser(prog=NAME, description="TEST STAND-IN for the mautrix-signal bridge.")
    parser.add_argument("-c", "--config", default="config.yaml", help="path of the config file")
    parser.add_argument("-r", "--registration", default="registration.yaml",
                        help="path where -g saves the appservice registration")
    parser.add_argument("-e", "--generate-example-config", action="store_true",
                        help="save the example config to the config path and quit")
    parser.add_argument("-g", "--generate-registration", action="store_true",
                        help="generate the registration and quit")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and quit")
    args = parser.parse_args()

    if args.version:
        print(f"{NAME} {VERSION} (test stand-in)")
        return
    if args.generate_example_config:
        write_example_config(args.config)
    if args.generate_registration:
        generate_registration(args.config, args.registration)
    run_bridge(args.config)


if __name__ == "__main__":
    main()
