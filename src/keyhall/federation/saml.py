"""Keyhall as a SAML 2.0 identity provider for AWS: its metadata, and signed responses for AssumeRoleWithSAML
and the console's SAML sign-in.

The response follows SAML 2.0 Core (§2 assertions, §3.2.2 Response) with the Web Browser SSO profile's
bearer confirmation (Profiles §4.1.4.2), and carries the attributes AWS reads ("Configuring SAML assertions
for the authentication response", IAM User Guide):

- ``https://aws.amazon.com/SAML/Attributes/Role``: exactly one ``ROLE_ARN,PROVIDER_ARN`` value, role first;
- ``…/RoleSessionName``, ``…/SessionDuration`` (seconds), ``…/SourceIdentity``;
- ``…/PrincipalTag:<Key>`` per session tag (single-valued), and ``…/TransitiveTagKeys``.

The assertion is signed (enveloped XML-DSig, RSA-SHA256, SHA-256 digests, exclusive c14n) with a reference
to its ``ID``; the Response around it is not. Nothing may re-serialise the signed assertion with different
whitespace, so the bytes returned are the bytes that were signed, never pretty-printed.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from keyhall.federation.naming import saml_audience

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
NSMAP_RESPONSE = {"samlp": SAMLP, "saml": SAML}
NSMAP_METADATA = {"md": MD, "ds": DS}

NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"

AWS_ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ROLE_ATTRIBUTE = AWS_ATTRIBUTES + "Role"
ROLE_SESSION_NAME_ATTRIBUTE = AWS_ATTRIBUTES + "RoleSessionName"
SESSION_DURATION_ATTRIBUTE = AWS_ATTRIBUTES + "SessionDuration"
SOURCE_IDENTITY_ATTRIBUTE = AWS_ATTRIBUTES + "SourceIdentity"
PRINCIPAL_TAG_PREFIX = AWS_ATTRIBUTES + "PrincipalTag:"
TRANSITIVE_TAG_KEYS_ATTRIBUTE = AWS_ATTRIBUTES + "TransitiveTagKeys"

#: How long an assertion may be presented: AWS recommends a short validity; 5 minutes covers clock skew.
ASSERTION_SECONDS = 300
#: IAM (and botocore's model) refuse metadata shorter than this.
MIN_METADATA_LENGTH = 1000


def _q(namespace: str, tag: str) -> str:
    return f"{{{namespace}}}{tag}"


def saml_time(timestamp: float) -> str:
    """xs:dateTime in UTC with a ``Z`` (SAML Core §1.3.3), to the second."""
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """An xs:ID (must not start with a digit) with 160 random bits (SAML Core §1.3.4)."""
    return "_" + secrets.token_hex(20)


def _certificate_base64(certificate_pem: str) -> str:
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


# ---- metadata ----------------------------------------------------------------------------------------


def metadata_xml(entity_id: str, certs: Sequence[str], *, sso_url: str | None = None) -> bytes:
    """The IdP's ``md:EntityDescriptor`` (SAML Metadata §2.4.3): one ``KeyDescriptor use="signing"`` per
    published certificate (PEM), so that during a rotation IAM trusts both the active and the next key.

    IAM's CreateSAMLProvider/UpdateSAMLProvider take this document as it is.
    """
    if not certs:
        raise ValueError("metadata needs at least one signing certificate")
    root = etree.Element(_q(MD, "EntityDescriptor"), nsmap=NSMAP_METADATA)
    root.set("entityID", entity_id)
    idp = etree.SubElement(root, _q(MD, "IDPSSODescriptor"))
    idp.set("WantAuthnRequestsSigned", "false")
    idp.set("protocolSupportEnumeration", SAMLP)
    for pem in certs:
        descriptor = etree.SubElement(idp, _q(MD, "KeyDescriptor"))
        descriptor.set("use", "signing")
        key_info = etree.SubElement(descriptor, _q(DS, "KeyInfo"))
        x509_data = etree.SubElement(key_info, _q(DS, "X509Data"))
        etree.SubElement(x509_data, _q(DS, "X509Certificate")).text = _certificate_base64(pem)
    etree.SubElement(idp, _q(MD, "NameIDFormat")).text = NAMEID_PERSISTENT
    location = sso_url or entity_id
    for binding in (BINDING_REDIRECT, BINDING_POST):
        service = etree.SubElement(idp, _q(MD, "SingleSignOnService"))
        service.set("Binding", binding)
        service.set("Location", location)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    assert len(document) >= MIN_METADATA_LENGTH, "an RSA-2048 certificate alone is longer than IAM's minimum"
    return document


# ---- the response ------------------------------------------------------------------------------------


def _attribute(parent: etree._Element, name: str, values: Sequence[str]) -> None:
    attribute = etree.SubElement(parent, _q(SAML, "Attribute"))
    attribute.set("Name", name)
    attribute.set("NameFormat", ATTRNAME_URI)
    for value in values:
        etree.SubElement(attribute, _q(SAML, "AttributeValue")).text = value


def build_assertion(
    *,
    assertion_id: str,
    issuer: str,
    partition: str,
    role_arn: str,
    provider_arn: str,
    name_id: str,
    session_name: str,
    source_identity: str | None,
    session_duration: int,
    now: float,
    principal_tags: Mapping[str, str],
    transitive_tag_keys: Sequence[str],
    lifetime_seconds: int = ASSERTION_SECONDS,
) -> etree._Element:
    """The unsigned ``saml:Assertion`` with a signature placeholder after its Issuer (where the schema
    wants ``ds:Signature``)."""
    audience = saml_audience(partition)
    expires = saml_time(now + lifetime_seconds)
    assertion = etree.Element(_q(SAML, "Assertion"), nsmap={"saml": SAML})
    assertion.set("ID", assertion_id)
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", saml_time(now))
    etree.SubElement(assertion, _q(SAML, "Issuer")).text = issuer
    placeholder = etree.SubElement(assertion, _q(DS, "Signature"), nsmap={"ds": DS})
    placeholder.set("Id", "placeholder")

    subject = etree.SubElement(assertion, _q(SAML, "Subject"))
    name = etree.SubElement(subject, _q(SAML, "NameID"))
    name.set("Format", NAMEID_PERSISTENT)
    name.text = name_id
    confirmation = etree.SubElement(subject, _q(SAML, "SubjectConfirmation"))
    confirmation.set("Method", BEARER)
    data = etree.SubElement(confirmation, _q(SAML, "SubjectConfirmationData"))
    data.set("NotOnOrAfter", expires)
    data.set("Recipient", audience)

    conditions = etree.SubElement(assertion, _q(SAML, "Conditions"))
    conditions.set("NotBefore", saml_time(now))
    conditions.set("NotOnOrAfter", expires)
    restriction = etree.SubElement(conditions, _q(SAML, "AudienceRestriction"))
    etree.SubElement(restriction, _q(SAML, "Audience")).text = audience

    authn = etree.SubElement(assertion, _q(SAML, "AuthnStatement"))
    authn.set("AuthnInstant", saml_time(now))
    authn.set("SessionIndex", assertion_id)
    authn.set("SessionNotOnOrAfter", saml_time(now + session_duration))
    context = etree.SubElement(authn, _q(SAML, "AuthnContext"))
    etree.SubElement(context, _q(SAML, "AuthnContextClassRef")).text = AUTHN_CONTEXT

    statement = etree.SubElement(assertion, _q(SAML, "AttributeStatement"))
    _attribute(statement, ROLE_ATTRIBUTE, [f"{role_arn},{provider_arn}"])
    _attribute(statement, ROLE_SESSION_NAME_ATTRIBUTE, [session_name])
    _attribute(statement, SESSION_DURATION_ATTRIBUTE, [str(session_duration)])
    if source_identity:
        _attribute(statement, SOURCE_IDENTITY_ATTRIBUTE, [source_identity])
    for key, value in principal_tags.items():
        _attribute(statement, PRINCIPAL_TAG_PREFIX + key, [value])
    if transitive_tag_keys:
        _attribute(statement, TRANSITIVE_TAG_KEYS_ATTRIBUTE, list(transitive_tag_keys))
    return assertion


def signed_response(
    *,
    private_key: rsa.RSAPrivateKey,
    certificate_pem: str,
    issuer: str,
    partition: str,
    role_arn: str,
    provider_arn: str,
    name_id: str,
    session_name: str,
    session_duration: int,
    now: float,
    source_identity: str | None = None,
    principal_tags: Mapping[str, str] | None = None,
    transitive_tag_keys: Sequence[str] = (),
    lifetime_seconds: int = ASSERTION_SECONDS,
) -> bytes:
    """A ``samlp:Response`` (Status Success) holding one signed assertion for one role, as bytes.

    ``Destination`` and the confirmation's ``Recipient`` are the partition's sign-in SAML endpoint, which is
    also the audience AWS checks (``SAML:aud`` in the role's trust policy).
    """
    assertion_id = new_id()
    assertion = build_assertion(
        assertion_id=assertion_id,
        issuer=issuer,
        partition=partition,
        role_arn=role_arn,
        provider_arn=provider_arn,
        name_id=name_id,
        session_name=session_name,
        source_identity=source_identity,
        session_duration=session_duration,
        now=now,
        principal_tags=principal_tags or {},
        transitive_tag_keys=transitive_tag_keys,
        lifetime_seconds=lifetime_seconds,
    )
    from signxml.algorithms import (  # imported when signing: loading it costs admin commands ~50 ms
        CanonicalizationMethod,
        DigestAlgorithm,
        SignatureConstructionMethod,
        SignatureMethod,
    )
    from signxml.signer import XMLSigner

    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        assertion, key=private_key, cert=certificate_pem, reference_uri=assertion_id, id_attribute="ID"
    )

    response = etree.Element(_q(SAMLP, "Response"), nsmap=NSMAP_RESPONSE)
    response.set("ID", new_id())
    response.set("Version", "2.0")
    response.set("IssueInstant", saml_time(now))
    response.set("Destination", saml_audience(partition))
    etree.SubElement(response, _q(SAML, "Issuer")).text = issuer
    status = etree.SubElement(response, _q(SAMLP, "Status"))
    etree.SubElement(status, _q(SAMLP, "StatusCode")).set("Value", STATUS_SUCCESS)
    response.append(signed)
    return etree.tostring(response, xml_declaration=False, encoding="UTF-8")


def encode_response(response: bytes) -> str:
    """The base64 form in which both STS (``SAMLAssertion``) and the console (``SAMLResponse``) take it."""
    return base64.b64encode(response).decode("ascii")
