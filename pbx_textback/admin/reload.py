"""The config a running process uses = the TOML file + the admin page's values, rebuilt
without a restart: on SIGHUP (`systemctl reload`: the file is read again) and whenever the
page's settings change in the store (every process on the store sees it within a second).

What needs a restart stays as started: the PBX connection, the transports, the store and the
listeners (settings.INFRASTRUCTURE). A file that does not load keeps the running config, and
the log says why in one line.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

from pbx_textback.config import ConfigError, loads
from pbx_textback.admin.settings import INFRASTRUCTURE
from pbx_textback.store import settings as ss

log = logging.getLogger("pbx_textback.config")
WATCH_S = 1.0


def with_page(cfg, store, *, secrets: bool = True):
    """cfg (built from its file's text) with the page's values in the store on top. A config
    not built from a file (the built-in defaults) has nothing to merge into."""
    page = ss.overrides(store)
    if not cfg.toml or page == cfg.page:
        return cfg
    try:
        return _build(cfg.toml, cfg.source, page, secrets)
    except ConfigError as e:      # the file changed under them: never a reason not to start
        log.error("the admin page's settings clash with %s and are not applied (the file alone is in "
                  "force until they are fixed on the page): %s", cfg.source, one_line(e))
        return cfg


def _build(text: str, source: str, page: dict, secrets: bool):
    return loads(text, source, for_service=True, strict=False, secrets=secrets, page=page)


def keep_infrastructure(new, old):
    """new, with what only a restart may change taken from old."""
    return dataclasses.replace(new, **{name: getattr(old, name) for name in INFRASTRUCTURE})


def one_line(e: ConfigError) -> str:
    first, *more = e.problems
    return first + (f" (and {len(more)} more problem(s): `pbx-textback check-config` lists them)" if more else "")


class Reloader:
    """apply(cfg) installs a new config in the running process."""

    def __init__(self, cfg, store, apply, *, secrets: bool = True):
        self.cfg, self.store, self.apply, self.secrets = cfg, store, apply, secrets
        self.version = ss.version(store)
        if cfg.page:
            log.info("%d setting(s) from the admin page override %s (`pbx-textback settings export`)",
                     len(cfg.page), cfg.source)

    def reload_file(self) -> bool:
        """SIGHUP: read the file again. False (and the old config runs on) when it does not load."""
        path = self.cfg.source
        try:
            text = Path(path).read_text(encoding="utf-8")
            new = _build(text, path, ss.overrides(self.store), self.secrets)
        except ConfigError as e:
            log.error("reload refused, the running config stays: %s: %s", path, one_line(e))
            return False
        except (OSError, UnicodeDecodeError) as e:
            log.error("reload refused, the running config stays: cannot read %s: %s", path,
                      getattr(e, "strerror", None) or e)
            return False
        changed = [n for n in INFRASTRUCTURE if getattr(new, n) != getattr(self.cfg, n)]
        self._install(keep_infrastructure(new, self.cfg))
        log.info("config reloaded from %s: %d line(s), %d page setting(s)%s", path, len(new.line),
                 len(new.page), f"; [{'], ['.join(changed)}] changed in the file: they apply after "
                                f"`systemctl restart pbx-textback`" if changed else "")
        return True

    def check_page(self) -> bool:
        """The page's settings changed since last looked: rebuild on the same file text."""
        version = ss.version(self.store)
        if version == self.version:
            return False
        self.version = version
        page = ss.overrides(self.store)
        if page == self.cfg.page:        # a pause or an hours override: kept in the history, not config
            return False
        try:
            new = _build(self.cfg.toml, self.cfg.source, page, self.secrets)
        except ConfigError as e:      # the page checks before it saves; a file reload may still clash
            log.error("page settings not applied, the running config stays: %s", one_line(e))
            return False
        self._install(keep_infrastructure(new, self.cfg))
        log.info("page settings applied (change #%d): %d page setting(s)", version, len(new.page))
        return True

    def _install(self, cfg) -> None:
        self.cfg = cfg
        self.apply(cfg)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            if self.cfg.toml:
                try:
                    self.check_page()
                except Exception as e:         # the store's trouble shows elsewhere
                    log.warning("could not read the page settings: %s", e)


def apply_to_service(svc, cfg) -> None:
    """Install cfg in a running Service: what reads the config on each call sees it at once."""
    svc.cfg = cfg
    svc.pipeline.cfg = cfg
    svc.worker.max_age_s = cfg.policy.max_age_minutes * 60
    if svc.web is not None:
        svc.web.cfg = cfg
