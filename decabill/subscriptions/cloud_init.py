"""Cloud-init user data of a provisioned server (behavior.md part A §7.5).

A bash script (`#!/bin/bash`, sent to the provider as is) that
1. installs root's authorized key (login by key only, password login off) and the server's pinned
   ed25519 host key,
2. installs Docker,
3. writes the stack of the chosen service into `/opt/agent-controller` (full stack: PostgreSQL, backend,
   frontend, nginx with a Let's Encrypt certificate for `<hostname>.<DNS_BASE_DOMAIN>`) or
   `/opt/agent-manager` (agent manager only), with an `.env` built from the effective configuration plus
   fresh per-instance secrets (ENCRYPTION_KEY, JWT_SECRET, database password),
4. waits until the DNS name resolves to the server (certificates need it) and starts the stack.

The script holds secrets (the customer's SMTP/Keycloak/Git credentials, the instance keys): it is built
in memory, handed to the provider, and never stored, logged or returned.
"""

from __future__ import annotations

import base64
import secrets
import shlex
from dataclasses import dataclass
from typing import Any

HEREDOC = "DECABILL_EOF"
STACK_DIRS = {"controller": "/opt/agent-controller", "manager": "/opt/agent-manager"}
IMAGES = {
    "controller": {
        "backend": "ghcr.io/decabill/agent-controller-backend:latest",
        "frontend": "ghcr.io/decabill/agent-controller-frontend:latest",
    },
    "manager": {"manager": "ghcr.io/decabill/agent-manager:latest"},
}


@dataclass(frozen=True)
class UserDataInput:
    service: str  # controller | manager
    config: dict[str, Any]
    hostname: str
    base_domain: str
    authorized_key: str  # OpenSSH public key for root
    host_private_key: str  # OpenSSH private host key (ed25519)
    host_public_key: str
    lets_encrypt_email: str | None = None

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.base_domain}"


def _env_value(value: Any) -> str:
    """One value of a docker compose `.env` file, quoted so that nothing in it is interpreted."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = "" if value is None else str(value)
    if "'" not in text and "\n" not in text and "\r" not in text:
        return f"'{text}'"
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
               .replace("\r", "").replace("\n", "\\n"))
    return f'"{escaped}"'


def _heredoc(path: str, content: str, mode: str) -> str:
    if any(line.strip() == HEREDOC for line in content.splitlines()):
        raise ValueError("content must not contain the heredoc delimiter")
    return f"cat > {path} <<'{HEREDOC}'\n{content.rstrip(chr(10))}\n{HEREDOC}\nchmod {mode} {path}\n"


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def _environment(data: UserDataInput) -> dict[str, Any]:
    config = data.config
    smtp, keycloak, git = _section(config, "smtp"), _section(config, "keycloak"), _section(config, "git")
    env: dict[str, Any] = {
        "PUBLIC_HOSTNAME": data.fqdn,
        "LETS_ENCRYPT_EMAIL": data.lets_encrypt_email or "",
        "AUTHENTICATION_METHOD": config.get("authenticationMethod") or "users",
        "STATIC_API_KEY": config.get("staticApiKey") or "",
        "ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "JWT_SECRET": secrets.token_hex(32),
    }
    if keycloak:
        env.update({
            "KEYCLOAK_SERVER_URL": keycloak.get("serverUrl") or "",
            "KEYCLOAK_AUTH_SERVER_URL": keycloak.get("authServerUrl") or "",
            "KEYCLOAK_REALM": keycloak.get("realm") or "",
            "KEYCLOAK_CLIENT_ID": keycloak.get("clientId") or "",
            "KEYCLOAK_CLIENT_SECRET": keycloak.get("clientSecret") or "",
        })
    if data.service == "manager":
        env.update({
            "GIT_SETUP_MODE": git.get("setupMode") or "empty",
            "GIT_REPOSITORY_URL": git.get("repositoryUrl") or "",
            "GIT_USERNAME": git.get("username") or "",
            "GIT_TOKEN": git.get("token") or "",
            "GIT_PASSWORD": git.get("password") or "",
            "GIT_PRIVATE_KEY": git.get("privateKey") or "",
            "GIT_COMMIT_AUTHOR_NAME": git.get("commitAuthorName") or "",
            "GIT_COMMIT_AUTHOR_EMAIL": git.get("commitAuthorEmail") or "",
            "CURSOR_API_KEY": config.get("cursorApiKey") or "",
        })
        return env
    env.update({
        "DISABLE_SIGNUP": bool(config.get("disableSignup", False)),
        "SMTP_HOST": smtp.get("host") or "mailhog",
        "SMTP_PORT": smtp.get("port") or 1025,
        "SMTP_USER": smtp.get("user") or "",
        "SMTP_PASSWORD": smtp.get("password") or "",
        "EMAIL_FROM": smtp.get("from") or "noreply@localhost",
        "HETZNER_API_TOKEN": config.get("hetznerApiToken") or "",
        "DIGITALOCEAN_API_TOKEN": config.get("digitaloceanApiToken") or "",
        "POSTGRES_PASSWORD": secrets.token_hex(24),
    })
    return env


def _compose(service: str) -> str:
    images = IMAGES[service]
    if service == "manager":
        return f"""services:
  manager:
    image: {images['manager']}
    env_file: .env
    restart: unless-stopped
    volumes: ["workspace:/workspace"]
  nginx:
    image: nginx:stable
    restart: unless-stopped
    ports: ["80:80", "443:443"]
    volumes: ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro", "certs:/etc/letsencrypt", "acme:/var/www/acme"]
    depends_on: [manager]
volumes: {{workspace: {{}}, certs: {{}}, acme: {{}}}}
"""
    return f"""services:
  postgres:
    image: postgres:16
    restart: unless-stopped
    environment: {{POSTGRES_PASSWORD: "${{POSTGRES_PASSWORD}}", POSTGRES_DB: agent}}
    volumes: ["pgdata:/var/lib/postgresql/data"]
  backend:
    image: {images['backend']}
    env_file: .env
    environment: {{DB_HOST: postgres, DB_PASSWORD: "${{POSTGRES_PASSWORD}}"}}
    restart: unless-stopped
    depends_on: [postgres]
  frontend:
    image: {images['frontend']}
    restart: unless-stopped
  nginx:
    image: nginx:stable
    restart: unless-stopped
    ports: ["80:80", "443:443"]
    volumes: ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro", "certs:/etc/letsencrypt", "acme:/var/www/acme"]
    depends_on: [backend, frontend]
volumes: {{pgdata: {{}}, certs: {{}}, acme: {{}}}}
"""


def _nginx(service: str, fqdn: str) -> str:
    upstream = "http://manager:8080" if service == "manager" else "http://frontend:80"
    api = "" if service == "manager" else "  location /api/ { proxy_pass http://backend:3000; }\n"
    return (f"server {{\n  listen 80;\n  server_name {fqdn};\n"
            f"  location /.well-known/acme-challenge/ {{ root /var/www/acme; }}\n"
            f"{api}  location / {{ proxy_pass {upstream}; }}\n}}\n")


def build_user_data(data: UserDataInput) -> str:
    if data.service not in STACK_DIRS:
        raise ValueError(f"unknown service {data.service!r}")
    directory = STACK_DIRS[data.service]
    env = "\n".join(f"{key}={_env_value(value)}" for key, value in _environment(data).items())
    email = data.lets_encrypt_email
    certbot_account = f"--email {shlex.quote(email)} --no-eff-email" if email else "--register-unsafely-without-email"
    project = directory.rsplit("/", 1)[-1]  # docker compose names volumes <project>_<volume>
    return "\n".join([
        "#!/bin/bash",
        f"# Decabill provisioning of {data.fqdn} ({data.service})",
        "set -euo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        "",
        "# --- SSH: root by key only, pinned host key",
        "install -d -m 700 /root/.ssh",
        _heredoc("/root/.ssh/authorized_keys", data.authorized_key, "600"),
        _heredoc("/etc/ssh/ssh_host_ed25519_key", data.host_private_key, "600"),
        _heredoc("/etc/ssh/ssh_host_ed25519_key.pub", data.host_public_key, "644"),
        "sed -i -E 's/^#?PasswordAuthentication .*/PasswordAuthentication no/; "
        "s/^#?PermitRootLogin .*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config",
        "systemctl restart ssh 2>/dev/null || systemctl restart sshd 2>/dev/null || true",
        "",
        "# --- Docker",
        "command -v docker >/dev/null || (curl -fsSL https://get.docker.com | sh)",
        "",
        f"# --- The {data.service} stack",
        f"install -d -m 700 {directory}",
        _heredoc(f"{directory}/.env", env, "600"),
        _heredoc(f"{directory}/docker-compose.yml", _compose(data.service), "644"),
        _heredoc(f"{directory}/nginx.conf", _nginx(data.service, data.fqdn), "644"),
        "",
        "# --- Wait for the DNS name, then certificate and start",
        f"for _ in $(seq 1 60); do getent hosts {data.fqdn} >/dev/null && break; sleep 10; done",
        f"cd {directory}",
        "docker compose up -d --pull=always",
        f"docker run --rm -v {project}_certs:/etc/letsencrypt -v {project}_acme:/var/www/acme certbot/certbot "
        f"certonly --webroot -w /var/www/acme -d {data.fqdn} --agree-tos --non-interactive {certbot_account} || true",
        "",
    ])
