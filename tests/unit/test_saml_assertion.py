"""The SAML response Keyhall gives AWS, checked with an independent verifier (signxml's XMLVerifier) and
read back attribute by attribute: moto checks none of this (testing-recipes.md §3); real AWS checks it all."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml.exceptions import InvalidDigest, InvalidSignature
from signxml.verifier import XMLVerifier

from keyhall.federation import saml
from keyhall.federation.keys import generate_key_material

NS = {"samlp": saml.SAMLP, "saml": saml.SAML, "ds": saml.DS, "md": saml.MD}
ROLE = "arn:aws:iam::123456789012:role/keyhall/KeyhallReserved_Admin_0123456789abcdef"
PROVIDER = "arn:aws:iam::123456789012:saml-provider/Keyhall"
ISSUER = "https://keyhall.example.com/saml/metadata"


@pytest.fixture(scope="module")
def key() -> tuple[rsa.RSAPrivateKey, str]:
    _, private_pem, certificate_pem = generate_key_material("saml", time.time())
    private = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return private, certificate_pem


def _response(key: tuple[rsa.RSAPrivateKey, str], now: float, **overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "private_key": key[0],
        "certificate_pem": key[1],
        "issuer": ISSUER,
        "partition": "aws",
        "role_arn": ROLE,
        "provider_arn": PROVIDER,
        "name_id": "alice@example.com",
        "session_name": "alice@example.com",
        "source_identity": "alice@example.com",
        "session_duration": 7200,
        "now": now,
        "principal_tags": {"Department": "Engineering", "CostCenter": "42"},
    }
    arguments.update(overrides)
    return saml.signed_response(**arguments)  # type: ignore[arg-type]


def _attributes(assertion: etree._Element) -> dict[str, list[str]]:
    return {
        str(a.get("Name")): [v.text or "" for v in a.findall("saml:AttributeValue", NS)]
        for a in assertion.findall("saml:AttributeStatement/saml:Attribute", NS)
    }


def test_the_assertion_verifies_and_says_what_aws_requires(key: tuple[rsa.RSAPrivateKey, str]) -> None:
    now = float(int(time.time()))
    response = _response(key, now)
    verified = XMLVerifier().verify(response, x509_cert=key[1], id_attribute="ID")
    assertion = verified.signed_xml  # only what the signature covers is trusted below
    assert assertion is not None and assertion.tag == f"{{{saml.SAML}}}Assertion"
    signature = etree.fromstring(response).find(".//ds:Signature", NS)
    assert signature is not None
    assert signature.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("rsa-sha256")
    assert signature.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    reference = signature.find("ds:SignedInfo/ds:Reference", NS)
    assert reference.get("URI") == "#" + assertion.get("ID")
    assert reference.find("ds:DigestMethod", NS).get("Algorithm").endswith("#sha256")
    # the signature sits right after the assertion's Issuer, where the schema puts it
    children = [etree.QName(c).localname for c in etree.fromstring(response).find("saml:Assertion", NS)]
    assert children[:3] == ["Issuer", "Signature", "Subject"]

    root = etree.fromstring(response)
    audience = "https://signin.aws.amazon.com/saml"
    assert root.tag == f"{{{saml.SAMLP}}}Response" and root.get("Destination") == audience
    assert root.findtext("saml:Issuer", namespaces=NS) == ISSUER
    assert root.find("samlp:Status/samlp:StatusCode", NS).get("Value") == saml.STATUS_SUCCESS

    assert assertion.findtext("saml:Issuer", namespaces=NS) == ISSUER
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    assert name_id.text == "alice@example.com" and name_id.get("Format") == saml.NAMEID_PERSISTENT
    confirmation = assertion.find("saml:Subject/saml:SubjectConfirmation", NS)
    assert confirmation.get("Method") == saml.BEARER
    data = confirmation.find("saml:SubjectConfirmationData", NS)
    assert data.get("Recipient") == audience
    assert data.get("NotOnOrAfter") == saml.saml_time(now + 300)
    conditions = assertion.find("saml:Conditions", NS)
    assert conditions.get("NotBefore") == saml.saml_time(now)
    assert conditions.get("NotOnOrAfter") == saml.saml_time(now + 300)
    assert [a.text for a in conditions.findall("saml:AudienceRestriction/saml:Audience", NS)] == [audience]
    authn = assertion.find("saml:AuthnStatement", NS)
    assert authn.get("SessionNotOnOrAfter") == saml.saml_time(now + 7200)

    attributes = _attributes(assertion)
    assert attributes[saml.ROLE_ATTRIBUTE] == [f"{ROLE},{PROVIDER}"]  # one value, role first
    assert attributes[saml.ROLE_SESSION_NAME_ATTRIBUTE] == ["alice@example.com"]
    assert attributes[saml.SESSION_DURATION_ATTRIBUTE] == ["7200"]
    assert attributes[saml.SOURCE_IDENTITY_ATTRIBUTE] == ["alice@example.com"]
    assert attributes[saml.PRINCIPAL_TAG_PREFIX + "Department"] == ["Engineering"]
    assert attributes[saml.PRINCIPAL_TAG_PREFIX + "CostCenter"] == ["42"]
    assert saml.TRANSITIVE_TAG_KEYS_ATTRIBUTE not in attributes
    assert all(len(values) == 1 for values in attributes.values())  # AWS tags are single-valued
    assert len(attributes) >= 2  # moto crashes on an AttributeStatement with one Attribute


def test_transitive_tag_keys_and_other_partitions(key: tuple[rsa.RSAPrivateKey, str]) -> None:
    response = _response(
        key,
        time.time(),
        partition="aws-us-gov",
        role_arn=ROLE.replace("arn:aws:", "arn:aws-us-gov:"),
        provider_arn=PROVIDER.replace("arn:aws:", "arn:aws-us-gov:"),
        transitive_tag_keys=("Department",),
    )
    assertion = XMLVerifier().verify(response, x509_cert=key[1], id_attribute="ID").signed_xml
    audience = "https://signin.amazonaws-us-gov.com/saml"
    assert etree.fromstring(response).get("Destination") == audience
    assert (
        assertion.findtext("saml:Conditions/saml:AudienceRestriction/saml:Audience", namespaces=NS)
        == audience
    )
    recipient = assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
    assert recipient.get("Recipient") == audience
    assert _attributes(assertion)[saml.TRANSITIVE_TAG_KEYS_ATTRIBUTE] == ["Department"]
    assert _attributes(assertion)[saml.ROLE_ATTRIBUTE][0].startswith("arn:aws-us-gov:iam::")


def test_tampering_breaks_the_signature(key: tuple[rsa.RSAPrivateKey, str]) -> None:
    response = _response(key, time.time())
    tampered = response.replace(b">alice@example.com<", b">mallory@example.com<")
    assert tampered != response
    with pytest.raises((InvalidSignature, InvalidDigest)):
        XMLVerifier().verify(tampered, x509_cert=key[1], id_attribute="ID")
    longer = response.replace(b">7200<", b">43200<")
    with pytest.raises((InvalidSignature, InvalidDigest)):
        XMLVerifier().verify(longer, x509_cert=key[1], id_attribute="ID")


def test_another_key_does_not_verify(key: tuple[rsa.RSAPrivateKey, str]) -> None:
    _, _, other_certificate = generate_key_material("saml", time.time())
    with pytest.raises(InvalidSignature):
        XMLVerifier().verify(_response(key, time.time()), x509_cert=other_certificate, id_attribute="ID")


def test_the_response_is_not_pretty_printed_and_encodes_for_sts(key: tuple[rsa.RSAPrivateKey, str]) -> None:
    response = _response(key, time.time())
    assert b"\n  <" not in response
    assert base64.b64decode(saml.encode_response(response)) == response


def test_metadata_lists_every_published_certificate() -> None:
    now = time.time()
    _, _, active = generate_key_material("saml", now)
    _, _, upcoming = generate_key_material("saml", now)
    document = saml.metadata_xml(ISSUER, [active, upcoming])
    assert len(document) >= saml.MIN_METADATA_LENGTH
    root = etree.fromstring(document)
    assert root.tag == f"{{{saml.MD}}}EntityDescriptor" and root.get("entityID") == ISSUER
    idp = root.find("md:IDPSSODescriptor", NS)
    assert idp.get("protocolSupportEnumeration") == saml.SAMLP
    descriptors = idp.findall("md:KeyDescriptor", NS)
    assert [d.get("use") for d in descriptors] == ["signing", "signing"]
    published = [d.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS) for d in descriptors]
    expected = [saml._certificate_base64(pem) for pem in (active, upcoming)]
    assert published == expected
    assert idp.findtext("md:NameIDFormat", namespaces=NS) == saml.NAMEID_PERSISTENT
    assert {s.get("Binding") for s in idp.findall("md:SingleSignOnService", NS)} == {
        saml.BINDING_POST,
        saml.BINDING_REDIRECT,
    }
    with pytest.raises(ValueError, match="certificate"):
        saml.metadata_xml(ISSUER, [])
