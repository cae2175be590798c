"""What a pod owner typed as the S3 endpoint: trimmed, normalised, its provider and region
recognised, and refused with a precise hint when it cannot be right (the bucket in it,
a provider's non-S3 address, a malformed host).

Pure functions; no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import ValidationFailed
from app.kit.netpolicy import parse_ip
from app.kit.validators import check_hostname

FIELD = "target.endpoint"

AWS = "aws"
B2 = "b2"
IDRIVE = "idrive_e2"
OCI = "oci"
GENERIC = "generic"

_AWS_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
# s3.amazonaws.com, s3-external-1, s3.<r>, s3-<r>, s3.dualstack.<r>, s3-fips(.dualstack).<r>
_AWS_EP = (
    rf"(?:s3(?:-fips)?(?:\.dualstack)?\.(?P<r1>{_AWS_REGION})|s3-(?P<r2>{_AWS_REGION})"
    r"|s3-external-1|s3)\.amazonaws\.com(?:\.cn)?"
)
_AWS_ENDPOINT = re.compile(rf"^{_AWS_EP}$")
_AWS_WITH_BUCKET = re.compile(rf"^(?P<bucket>.+)\.(?P<ep>{_AWS_EP})$")
_AWS_WEBSITE = re.compile(
    rf"^(?:(?P<bucket>.+)\.)?s3-website[.-](?P<region>{_AWS_REGION})\.amazonaws\.com$"
)

_B2_EP = r"s3\.(?P<region>[a-z0-9]+(?:-[a-z0-9]+)*)\.backblazeb2\.com"
_B2_ENDPOINT = re.compile(rf"^{_B2_EP}$")
_B2_WITH_BUCKET = re.compile(rf"^(?P<bucket>.+)\.(?P<ep>{_B2_EP})$")

# Per-account "n6j2.fra1.idrivee2-95.com", and regional "<x>.<region>.idrivee2.com".
_IDRIVE_DOMAIN = re.compile(r"^(?P<prefix>.+?)\.(?P<domain>idrivee2(?:-\d+)?\.com)$")

_OCI_DOMAIN = r"(?:oraclecloud\.com|oci\.customer-oci\.com)"
_OCI = re.compile(
    rf"^(?:(?P<bucket>.+)\.)?(?P<ns>[a-z0-9][a-z0-9-]*)\.compat\.objectstorage\."
    rf"(?P<region>[a-z0-9]+(?:-[a-z0-9]+)*)\.{_OCI_DOMAIN}$"
)
_OCI_NATIVE = re.compile(
    rf"^(?:.+\.)?objectstorage\.(?P<region>[a-z0-9]+(?:-[a-z0-9]+)*)\.{_OCI_DOMAIN}$"
)

PROVIDER_NAMES = {
    AWS: "Amazon AWS S3",
    B2: "Backblaze B2",
    IDRIVE: "iDrive e2",
    OCI: "Oracle Cloud Object Storage",
    GENERIC: "S3-compatible (MinIO and others)",
}


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "https" | "http"
    host: str  # lower case, no trailing dot; IPv6 without brackets
    port: int | None  # None: the scheme's default
    provider: str
    region: str | None  # inferred from the hostname, when it says
    path_style: bool  # bucket in the path (restic's choice for every non-AWS server)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.scheme == "https" else 80)


def _refuse(message: str, hint: str) -> ValidationFailed:
    return ValidationFailed(FIELD, message, hint=hint)


def _bucket_refusal(bucket: str, endpoint: str) -> ValidationFailed:
    return _refuse(
        f"the endpoint contains the bucket name '{bucket}'",
        f"use '{endpoint}' as the endpoint and '{bucket}' as the bucket",
    )


def _split_scheme(text: str) -> tuple[str, str]:
    lowered = text.lower()
    if lowered.startswith("s3://"):
        bucket = text[5:].split("/", 1)[0]
        raise _refuse(
            f"'{text}' is a bucket address, not an endpoint",
            f"give the provider's endpoint hostname (e.g. s3.amazonaws.com) and put "
            f"'{bucket}' in the bucket field",
        )
    if lowered.startswith("s3:"):  # a pasted restic repository URL: s3:https://host/bucket
        text, lowered = text[3:], lowered[3:]
    if "://" not in text:
        return "https", text
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme not in ("https", "http"):
        raise _refuse(
            f"the endpoint scheme '{scheme}://' is not supported",
            "give the hostname alone (https is used), e.g. s3.us-west-001.backblazeb2.com",
        )
    return scheme, rest


def _split_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise _refuse(
                f"'{hostport}' is not a valid host", "write an IPv6 address as [::1]:9000"
            )
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    elif ":" in hostport:
        raise _refuse(f"'{hostport}' is not a valid host", "write an IPv6 address as [::1]:9000")
    else:
        host, port_text = hostport, ""
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _refuse(f"'{port_text}' is not a valid port", "a port is a number from 1 to 65535")
    return host, int(port_text)


def parse_endpoint(raw: str) -> Endpoint:
    """Normalise ``raw`` (``host``, ``https://host``, ``host/``, with a port) and recognise
    its provider and region."""
    text = raw.strip()
    if not text:
        raise _refuse("the endpoint is empty", "enter the provider's S3 endpoint hostname")
    if any(ch.isspace() for ch in text):
        raise _refuse("the endpoint contains spaces", "enter the hostname alone, without spaces")
    scheme, rest = _split_scheme(text)
    if "@" in rest.split("/", 1)[0]:
        raise _refuse(
            "the endpoint contains credentials",
            "enter the hostname alone; keys go in access_key_id and secret_access_key",
        )
    if "?" in rest or "#" in rest:
        raise _refuse("the endpoint contains a query or fragment", "enter the hostname alone")
    hostport, _, path = rest.partition("/")
    host, port = _split_port(hostport)
    host = host.lower().rstrip(".")
    if (scheme == "https" and port == 443) or (scheme == "http" and port == 80):
        port = None
    try:
        host = check_hostname(host)
    except ValueError as exc:
        raise _refuse(f"'{host}' is not a valid hostname", "check the endpoint's spelling") from exc
    netloc = f"[{host}]" if ":" in host else host
    netloc = f"{netloc}:{port}" if port else netloc
    segments = [s for s in path.split("/") if s]
    if segments:
        raise _bucket_refusal(segments[0], netloc)
    provider, region, path_style = _recognise(host, port)
    return Endpoint(scheme, host, port, provider, region, path_style)


def _with_port(host: str, port: int | None) -> str:
    return f"{host}:{port}" if port else host


def _recognise(host: str, port: int | None) -> tuple[str, str | None, bool]:
    if parse_ip(host) is not None or host == "localhost" or host.endswith(".localhost"):
        return GENERIC, None, True
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return _aws(host, port)
    if host.endswith(".backblazeb2.com"):
        return _b2(host, port)
    if match := _IDRIVE_DOMAIN.match(host):
        return _idrive(match, port)
    if host.endswith((".oraclecloud.com", ".oci.customer-oci.com")):
        return _oci(host, port)
    # A generic host that starts with the bucket's name may still be right (MinIO at
    # backups.example.com with a bucket "backups"), so it is not refused.
    return GENERIC, None, True


def _aws(host: str, port: int | None) -> tuple[str, str | None, bool]:
    if match := _AWS_ENDPOINT.match(host):
        return AWS, match["r1"] or match["r2"] or "us-east-1", False
    if match := _AWS_WEBSITE.match(host):
        region = match["region"]
        raise _refuse(
            f"'{host}' is a static website address, not the S3 API",
            f"use 's3.{region}.amazonaws.com' as the endpoint"
            + (f" and '{match['bucket']}' as the bucket" if match["bucket"] else ""),
        )
    if match := _AWS_WITH_BUCKET.match(host):
        raise _bucket_refusal(match["bucket"], _with_port(match["ep"], port))
    raise _refuse(
        f"'{host}' is not an Amazon S3 endpoint",
        "use 's3.amazonaws.com' or a regional endpoint like 's3.us-east-1.amazonaws.com'",
    )


def _b2(host: str, port: int | None) -> tuple[str, str | None, bool]:
    if match := _B2_ENDPOINT.match(host):
        return B2, match["region"], True
    if match := _B2_WITH_BUCKET.match(host):
        raise _bucket_refusal(match["bucket"], _with_port(match["ep"], port))
    raise _refuse(
        f"'{host}' is a Backblaze B2 download or native-API address, not its S3 endpoint",
        "use the S3 endpoint shown as 'Endpoint' under Buckets, like "
        "'s3.us-west-001.backblazeb2.com'",
    )


def _idrive(match: re.Match[str], port: int | None) -> tuple[str, str | None, bool]:
    labels = match["prefix"].split(".")
    domain = match["domain"]
    if len(labels) > 2:
        endpoint = ".".join([*labels[-2:], domain])
        raise _bucket_refusal(".".join(labels[:-2]), _with_port(endpoint, port))
    region = labels[-1] if len(labels) == 2 else None
    return IDRIVE, region, True


def _oci(host: str, port: int | None) -> tuple[str, str | None, bool]:
    if match := _OCI.match(host):
        if match["bucket"]:
            endpoint = host[len(match["bucket"]) + 1 :]
            raise _bucket_refusal(match["bucket"], _with_port(endpoint, port))
        return OCI, match["region"], True
    if match := _OCI_NATIVE.match(host):
        region = match["region"]
        raise _refuse(
            f"'{host}' is Oracle's native Object Storage API, not its S3-compatible endpoint",
            f"use '<namespace>.compat.objectstorage.{region}.oraclecloud.com' with your "
            "Object Storage namespace (shown in the OCI console under Tenancy details)",
        )
    raise _refuse(
        f"'{host}' is not an Oracle Object Storage S3 endpoint",
        "use '<namespace>.compat.objectstorage.<region>.oraclecloud.com'",
    )
