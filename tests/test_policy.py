"""Names, permission and trust documents, and how documents are compared."""

import json
from urllib.parse import quote

import pytest

from velero_irsa_postrender import policy
from velero_irsa_postrender.velero import Bucket

ISSUER = "https://oidc.eks.eu-central-1.amazonaws.com/id/ABC123"
PROVIDER = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-central-1.amazonaws.com/id/ABC123"


def test_role_and_policy_names_follow_the_seed_convention():
    assert policy.role_name("prod-eu", "velero") == "AWSIRSAprod-euveleroVelero"
    assert policy.policy_name("AWSIRSAprod-euveleroVelero") == "AWSIRSAprod-euveleroVelero_policy"


def test_long_names_are_shortened_deterministically_and_stay_unique():
    a = policy.role_name("c" * 60, "velero")
    b = policy.role_name("c" * 60, "velero2")
    assert len(a) == len(b) == 64
    assert a != b
    assert a == policy.role_name("c" * 60, "velero")


@pytest.mark.parametrize(
    ("region", "partition"), [("eu-central-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
)
def test_partition_follows_the_region(region, partition):
    assert policy.partition_for_region(region) == partition


def test_trust_names_exactly_one_subject_and_the_sts_audience():
    statement = policy.trust_statement(PROVIDER, ISSUER, "velero", "velero-server")
    host = "oidc.eks.eu-central-1.amazonaws.com/id/ABC123"
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{host}:sub": "system:serviceaccount:velero:velero-server",
                f"{host}:aud": "sts.amazonaws.com",
            }
        },
    }


def test_admits_rejects_wildcards_wrong_accounts_and_missing_audience():
    good = policy.trust_policy([policy.trust_statement(PROVIDER, ISSUER, "velero", "velero-server")])
    assert policy.admits(good, PROVIDER, ISSUER, "velero", "velero-server")
    assert not policy.admits(good, PROVIDER, ISSUER, "velero", "other")
    assert not policy.admits(good, PROVIDER, ISSUER, "backup", "velero-server")

    wildcard = json.loads(json.dumps(good).replace("StringEquals", "StringLike"))
    assert not policy.admits(wildcard, PROVIDER, ISSUER, "velero", "velero-server")
    no_aud = json.loads(json.dumps(good))
    no_aud["Statement"][0]["Condition"]["StringEquals"].pop("oidc.eks.eu-central-1.amazonaws.com/id/ABC123:aud")
    assert not policy.admits(no_aud, PROVIDER, ISSUER, "velero", "velero-server")


def test_permission_policy_is_scoped_to_exact_buckets_and_prefixes():
    document = policy.permission_policy([Bucket("velero-prod-eu"), Bucket("second", "cluster-a")], "aws-cn")
    objects, buckets = document["Statement"][1], document["Statement"][2]
    assert objects["Resource"] == ["arn:aws-cn:s3:::second/cluster-a/*", "arn:aws-cn:s3:::velero-prod-eu/*"]
    assert buckets == {
        "Sid": "VeleroBuckets",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": ["arn:aws-cn:s3:::second", "arn:aws-cn:s3:::velero-prod-eu"],
    }
    assert "velero-*" not in json.dumps(document)
    assert set(document["Statement"][0]["Action"]) == set(policy.EC2_ACTIONS)


def test_kms_keys_add_the_kms_statements():
    key = "arn:aws:kms:eu-central-1:123456789012:key/abcd"
    document = policy.permission_policy([Bucket("b")], "aws", [key])
    assert [s["Sid"] for s in document["Statement"]][-2:] == ["VeleroKms", "VeleroKmsGrants"]
    assert document["Statement"][-1]["Resource"] == [key]


def test_semantic_comparison_ignores_order_singletons_and_url_encoding():
    document = policy.permission_policy([Bucket("b")], "aws")
    shuffled = json.loads(json.dumps(document))
    shuffled["Statement"].reverse()
    shuffled["Statement"][0]["Action"] = "s3:ListBucket"
    shuffled["Statement"][0]["Resource"] = "arn:aws:s3:::b"
    assert policy.same_document(quote(json.dumps(shuffled)), document)
    shuffled["Statement"][1]["Action"].pop()
    assert not policy.same_document(shuffled, document)
