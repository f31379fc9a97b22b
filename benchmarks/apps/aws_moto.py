"""boto3 against moto's in-process AWS mocks: S3 (bucket, objects) and DynamoDB (table, items).

``python aws_moto.py [ROUNDS]``. No network: moto intercepts every botocore request in this
process; the credentials below are fake and the instance-metadata lookup is disabled.
"""

from __future__ import annotations

import os
import sys

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)

import boto3
from boto3.dynamodb.conditions import Key
from moto import mock_aws

OBJECTS = 40
ITEMS = 60


def s3_round(n: int) -> int:
    """Create a bucket, put and read back objects, list them; the bytes read."""
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = f"heapscope-bench-{n}"
    s3.create_bucket(Bucket=bucket)
    for i in range(OBJECTS):
        body = (f"object {i} of round {n}\n" * (20 + i)).encode()
        s3.put_object(Bucket=bucket, Key=f"data/{i:04d}.txt", Body=body)
    read = 0
    for i in range(0, OBJECTS, 2):
        read += len(s3.get_object(Bucket=bucket, Key=f"data/{i:04d}.txt")["Body"].read())
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="data/")
    assert listed["KeyCount"] == OBJECTS
    return read


def dynamodb_round(n: int) -> int:
    """Create a table, put items, query one partition; the number of items found."""
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    table = dynamodb.create_table(
        TableName=f"orders-{n}",
        KeySchema=[
            {"AttributeName": "customer", "KeyType": "HASH"},
            {"AttributeName": "order", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "customer", "AttributeType": "S"},
            {"AttributeName": "order", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    with table.batch_writer() as batch:
        for i in range(ITEMS):
            batch.put_item(
                Item={"customer": f"c{i % 4}", "order": i, "items": [f"sku-{i}", "sku-0"]}
            )
    found = table.query(KeyConditionExpression=Key("customer").eq("c1"))["Items"]
    assert len(found) == ITEMS // 4
    return len(found)


def main(rounds: int) -> None:
    """Run the S3 and DynamoDB rounds under one mock."""
    with mock_aws():
        for n in range(rounds):
            print(s3_round(n), dynamodb_round(n))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
