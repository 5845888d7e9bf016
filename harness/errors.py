"""One tree for every exception the harness raises, so a caller can tell by class what went wrong.

::

    HarnessError                      base of everything below
    ├── UsageError                    bad input: a flag, harness.toml, a fixture, a setting (exit 2)
    │   ├── RemoteTargetError         (safety) a non-loopback target without --allow-remote
    │   ├── ScheduleError             (faults.schedule) a bad fault schedule, naming the line
    │   ├── SLOFileError              (slo) a bad SLO file or expression
    │   ├── SettingsError             (load.settings) a bad load setting
    │   ├── AudioFormatError          (audio) a WAV that is not 16-bit mono PCM at the right rate
    │   └── ClientConfigError         (scenarios/browser) a bad browser client config
    ├── CodecError                    a codec that cannot be loaded or breaks the Codec interface (exit 2)
    ├── ServiceError                  (services) something the harness starts did not start (exit 2)
    │   ├── ToxiproxyError            (faults.toxiproxy) a Toxiproxy call failed
    │   ├── BrowserUnavailable        (browser) Chromium or Playwright is missing
    │   ├── ProcessFaultError         (faults.process) the target cannot take a process fault
    │   ├── FaultError                (faults.base) a fault whose layer is missing or that ran twice
    │   └── LoadRunError              (load.job) Locust did not run
    └── BackendError                  what the backend under test did: a failure of the backend (exit 1)
        ├── ProtocolError             (protocols.base) a frame that breaks the protocol
        ├── SessionCreateError        (protocols.base) session creation refused
        ├── StreamConnectError        (drivers._common) a WebSocket handshake that did not complete
        ├── ResendUnavailable         (drivers.buffer) the server asked for audio below its durable offset
        ├── LoadFailure               (load.locustfile) one failed load request, as Locust shows it
        └── ScenarioTimeout           the backend did not do something within its time limit; the
                                      message is the symptom ("no ack past offset N of M within T s")

``harness run`` exits 2 when a suite could not judge the backend because of a harness-side error
(:func:`is_harness_side`), and 1 when the backend failed; it reads the class, never the text.
Control-flow signals that never leave their module (``faults.matrix.CaseSkipped``,
``faults.scheduler.SessionEnded``, the browser kit's ``ScenarioStopped``) are not errors and stay
outside the tree.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every exception the harness raises."""


class UsageError(HarnessError):
    """Bad input to the harness (flags, harness.toml, fixtures, settings); the message names it."""


class CodecError(HarnessError, ValueError):
    """A codec could not be loaded (bad ``--protocol`` spec, missing module or class) or does not
    implement the Codec interface; the message names the spec and what is missing."""


class ServiceError(HarnessError, RuntimeError):
    """A service could not be started or did not answer; the message says which and why."""


class BackendError(HarnessError):
    """The backend under test did something wrong: a failure to report, not a harness problem."""


class ScenarioTimeout(BackendError, TimeoutError):
    """The backend did not do what a scenario waited for within its limit. The message is the
    symptom, e.g. "no ack past offset 3200 of 67200 within 10 s"."""


def is_harness_side(exc: BaseException) -> bool:
    """True when ``exc`` means the harness could not run (exit 2), not that the backend failed."""
    return isinstance(exc, HarnessError) and not isinstance(exc, BackendError)
