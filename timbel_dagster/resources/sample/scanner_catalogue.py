"""The vulnerabilities the sample scanner reports: real, public advisories on the packages of
the sample services' stacks.

Every advisory is copied from a report Trivy wrote in its own integration tests
(aquasecurity/trivy at dc3c56eed58ab21c7e08d26757c517bc946a86c5,
`integration/testdata/{alpine-39,alpine-310,debian-buster,distroless-base,pom,pip,npm,
spring4shell-jre11,gomod}.json.golden`): the id, Trivy's severity and its source, the title
(none where Trivy had none), the fixed version, NVD's CVSS v3 and the publication date. An
installed version is a real release the advisory affects.
"""

from __future__ import annotations

from dataclasses import dataclass

_CRITICAL_NET = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
_LOW_C_NET = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"
_XSS = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"


@dataclass(frozen=True)
class Advisory:
    """One vulnerability as Trivy's database describes it."""

    vulnerability_id: str
    severity: str
    severity_source: str
    title: str | None
    fixed_version: str | None  # None: no fix released (Trivy's status `affected`)
    cvss: float  # NVD's CVSS v3 base score
    cvss_vector: str
    published: str


@dataclass(frozen=True)
class Component:
    """Packages installed and upgraded together, and the advisories of that version."""

    key: str
    packages: tuple[str, ...]
    installed: str
    advisories: tuple[Advisory, ...]


@dataclass(frozen=True)
class Stack:
    """What an image of a service holds: a base OS and a language's packages."""

    os_family: str
    os_name: str
    os_components: tuple[Component, ...]
    lang_type: str  # Trivy's result type: jar, python-pkg, node-pkg, gobinary
    lang_target: str  # the result's target; `{service}` is the service's name
    lang_components: tuple[Component, ...] = ()


OPENSSL_FORK = Advisory(
    "CVE-2019-1549", "MEDIUM", "nvd", "openssl: information disclosure in fork()",
    "1.1.1d-r0", 5.3, _LOW_C_NET, "2019-09-10T17:15:00Z",
)  # fmt: skip
OPENSSL_RSAZ = Advisory(
    "CVE-2019-1551", "MEDIUM", "nvd",
    "openssl: Integer overflow in RSAZ modular exponentiation on x86_64",
    "1.1.1d-r2", 5.3, _LOW_C_NET, "2019-12-06T18:15:00Z",
)  # fmt: skip
OPENSSL_PKCS7 = Advisory(
    "CVE-2019-1563", "LOW", "nvd",
    "openssl: information disclosure in PKCS7_dataDecode and CMS_decrypt_set1_pkey",
    "1.1.0l-1~deb9u1", 3.7, "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N",
    "2019-09-10T17:15:00Z",
)  # fmt: skip
MUSL_X87 = Advisory(
    "CVE-2019-14697", "CRITICAL", "nvd", None, "1.1.20-r5", 9.8,
    "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "2019-08-06T16:15:00Z",
)  # fmt: skip
BASH_UID = Advisory(
    "CVE-2019-18276", "LOW", "debian",
    "bash: when effective UID is not equal to its real UID the saved UID is not dropped",
    None, 7.8, "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "2019-11-28T01:15:00Z",
)  # fmt: skip
LIBIDN2_OVERFLOW = Advisory(
    "CVE-2019-18224", "CRITICAL", "nvd",
    "libidn2: heap-based buffer overflow in idn2_to_ascii_4i in lib/lookup.c",
    "2.0.5-1+deb10u1", 9.8, _CRITICAL_NET, "2019-10-21T17:15:00Z",
)  # fmt: skip
JACKSON_ANTEROS = Advisory(
    "CVE-2020-9548", "CRITICAL", "ghsa", "jackson-databind: Serialization gadgets in anteros-core",
    "2.9.10.4", 9.8, _CRITICAL_NET, "2020-03-02T04:15:00Z",
)  # fmt: skip
JACKSON_SWING = Advisory(
    "CVE-2021-20190", "HIGH", "nvd",
    "jackson-databind: mishandles the interaction between serialization gadgets and typing, "
    "related to javax.swing",
    "2.9.10.7", 8.1, "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "2021-01-19T17:15:00Z",
)  # fmt: skip
SPRING4SHELL = Advisory(
    "CVE-2022-22965", "CRITICAL", "ghsa", "spring-framework: RCE via Data Binding on JDK 9+",
    "5.3.18", 9.8, _CRITICAL_NET, "2022-04-01T23:15:00Z",
)  # fmt: skip
WERKZEUG_PIN = Advisory(
    "CVE-2019-14806", "HIGH", "ghsa",
    "python-werkzeug: insufficient debugger PIN randomness vulnerability",
    "0.15.3", 7.5, "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "2019-08-09T15:15:00Z",
)  # fmt: skip
WERKZEUG_REDIRECT = Advisory(
    "CVE-2020-28724", "MEDIUM", "ghsa",
    "python-werkzeug: open redirect via double slash in the URL",
    "0.11.6", 6.1, _XSS, "2020-11-18T15:15:00Z",
)  # fmt: skip
JQUERY_PROTOTYPE = Advisory(
    "CVE-2019-11358", "MEDIUM", "ghsa",
    "jquery: Prototype pollution in object's prototype leading to denial of service, remote "
    "code execution, or property injection",
    "3.4.0", 6.1, _XSS, "2019-04-20T00:29:00Z",
)  # fmt: skip
OPA_CALCULATION = Advisory(
    "CVE-2022-23628", "MEDIUM", "nvd", "Incorrect Calculation", "0.37.0", 5.3,
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:N", "2022-02-09T22:15:00Z",
)  # fmt: skip

_OPENSSL = ("libcrypto1.1", "libssl1.1")
_JAVA = Stack(
    "debian", "10.1",
    (
        Component("debian-10/bash", ("bash",), "5.0-4", (BASH_UID,)),
        Component("debian-10/libidn2", ("libidn2-0",), "2.0.5-1", (LIBIDN2_OVERFLOW,)),
    ),
    "jar", "Java",
    (
        Component(
            "jackson-databind", ("com.fasterxml.jackson.core:jackson-databind",), "2.9.10",
            (JACKSON_ANTEROS, JACKSON_SWING),
        ),
        Component("spring-beans", ("org.springframework:spring-beans",), "5.3.15", (SPRING4SHELL,)),
    ),
)  # fmt: skip
_GO_BASE = Component("alpine-3.10/openssl", _OPENSSL, "1.1.1c-r0", (OPENSSL_FORK, OPENSSL_RSAZ))
_GO = Stack("alpine", "3.10.2", (_GO_BASE,), "gobinary", "usr/local/bin/{service}")
_GO_OPA = Stack(
    "alpine", "3.10.2", (_GO_BASE,), "gobinary", "usr/local/bin/{service}",
    (Component("opa", ("github.com/open-policy-agent/opa",), "v0.35.0", (OPA_CALCULATION,)),),
)  # fmt: skip
_PYTHON = Stack(
    "debian", "9.9",
    (Component("debian-9/openssl", ("libssl1.1", "openssl"), "1.1.0k-1~deb9u1", (OPENSSL_PKCS7,)),),
    "python-pkg", "Python",
    (Component("werkzeug", ("Werkzeug",), "0.11", (WERKZEUG_PIN, WERKZEUG_REDIRECT)),),
)  # fmt: skip
_NODE = Stack(
    "alpine", "3.9.4",
    (
        Component("alpine-3.9/musl", ("musl", "musl-utils"), "1.1.20-r4", (MUSL_X87,)),
        Component("alpine-3.9/openssl", _OPENSSL, "1.1.1b-r1", (OPENSSL_FORK, OPENSSL_RSAZ)),
    ),
    "node-pkg", "Node.js",
    (Component("jquery", ("jquery",), "3.3.1", (JQUERY_PROTOTYPE,)),),
)  # fmt: skip

# Every sample service (organisation.SERVICES) and the stack its images are built on.
STACKS: dict[str, Stack] = {
    "payments-api": _JAVA,
    "billing-worker": _JAVA,
    "ledger-service": _JAVA,
    "search-indexer": _JAVA,
    "catalog-api": _GO,
    "cart-service": _GO,
    "auth-gateway": _GO_OPA,
    "notification-hub": _PYTHON,
    "ml-scoring": _PYTHON,
    "etl-scheduler": _PYTHON,
    "checkout-web": _NODE,
    "web-frontend": _NODE,
}
