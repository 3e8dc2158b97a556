// S3 operations through @aws-sdk/client-s3, for tests/e2e/s3_clients.py (`JsS3`).
//
// Input (stdin, JSON): {"endpoint", "region", "accessKeyId", "secretAccessKey",
//                       "ops": [{"op": "PutBucketEncryption", "input": {...}}, ...]}
// Output (stdout, JSON): one result per operation, in order:
//   {"ok": true, "status": 200, "output": <the command's output without $metadata>}
//   {"ok": false, "status": 404, "name", "code", "message", "requestId", "resource"}
//
// Bytes cross as base64: an input's "BodyBase64" (or "BodyFile", a path to read) becomes its
// Body, and an output's Body (GetObject) is read whole and answered as
// {"base64", "length", "sha256"}.
//
// The client is constructed as the integration guide constructs it (region, endpoint,
// forcePathStyle: true, static credentials), with one attempt so that a 503 is seen as it is.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import {
  S3Client,
  ListBucketsCommand,
  CreateBucketCommand,
  HeadBucketCommand,
  DeleteBucketCommand,
  GetBucketEncryptionCommand,
  PutBucketEncryptionCommand,
  DeleteBucketEncryptionCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  ListObjectsCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  ListPartsCommand,
  ListMultipartUploadsCommand,
  UploadPartCopyCommand
} from '@aws-sdk/client-s3';

const COMMANDS = {
  ListBuckets: ListBucketsCommand,
  CreateBucket: CreateBucketCommand,
  HeadBucket: HeadBucketCommand,
  DeleteBucket: DeleteBucketCommand,
  GetBucketEncryption: GetBucketEncryptionCommand,
  PutBucketEncryption: PutBucketEncryptionCommand,
  DeleteBucketEncryption: DeleteBucketEncryptionCommand,
  PutObject: PutObjectCommand,
  GetObject: GetObjectCommand,
  HeadObject: HeadObjectCommand,
  DeleteObject: DeleteObjectCommand,
  DeleteObjects: DeleteObjectsCommand,
  ListObjectsV2: ListObjectsV2Command,
  ListObjects: ListObjectsCommand,
  CopyObject: CopyObjectCommand,
  CreateMultipartUpload: CreateMultipartUploadCommand,
  UploadPart: UploadPartCommand,
  CompleteMultipartUpload: CompleteMultipartUploadCommand,
  AbortMultipartUpload: AbortMultipartUploadCommand,
  ListParts: ListPartsCommand,
  ListMultipartUploads: ListMultipartUploadsCommand,
  UploadPartCopy: UploadPartCopyCommand
};

// The command input with BodyBase64 / BodyFile turned into a Body of bytes.
async function commandInput(input) {
  const { BodyBase64, BodyFile, ...rest } = input ?? {};
  if (BodyBase64 !== undefined) return { ...rest, Body: Buffer.from(BodyBase64, 'base64') };
  if (BodyFile !== undefined) return { ...rest, Body: await readFile(BodyFile) };
  return rest;
}

// The command output with a streamed Body read whole and described.
async function commandOutput(output) {
  if (!output.Body) return output;
  const bytes = Buffer.from(await output.Body.transformToByteArray());
  return {
    ...output,
    Body: {
      base64: bytes.toString('base64'),
      length: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex')
    }
  };
}

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

const request = JSON.parse(await readStdin());
const s3Client = new S3Client({
  region: request.region ?? 'us-east-1',
  endpoint: request.endpoint,
  forcePathStyle: true,
  maxAttempts: 1,
  credentials: {
    accessKeyId: request.accessKeyId,
    secretAccessKey: request.secretAccessKey
  }
});

const results = [];
for (const { op, input } of request.ops) {
  const Command = COMMANDS[op];
  if (!Command) {
    results.push({ ok: false, status: null, name: 'UnknownOperation', message: op });
    continue;
  }
  try {
    const { $metadata, ...output } = await s3Client.send(new Command(await commandInput(input)));
    results.push({
      ok: true,
      status: $metadata.httpStatusCode,
      requestId: $metadata.requestId,
      output: await commandOutput(output)
    });
  } catch (error) {
    results.push({
      ok: false,
      status: error.$metadata?.httpStatusCode ?? null,
      name: error.name,
      code: error.Code ?? error.name,
      message: error.message,
      requestId: error.$metadata?.requestId ?? null,
      errorRequestId: error.RequestId ?? null,
      resource: error.Resource ?? null
    });
  }
}
process.stdout.write(JSON.stringify(results) + '\n');
