/**
 * A Backend on S3-compatible object storage (AWS S3, Ceph RADOS Gateway, MinIO…)
 * through the official AWS SDK v3. Objects live under an optional prefix in one
 * bucket; a PUT is atomic (an object is whole or absent), so no temporary names
 * are needed, and carries its MD5 for the server to check. Large objects go up in parts (multipart upload). Credentials come
 * from the SDK's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile…).
 *
 * Locations, as restic users write them:
 *   s3:http://127.0.0.1:7480/bucket/prefix   a custom endpoint (path-style addressing)
 *   s3:https://s3.example.com/bucket/prefix
 *   s3:bucket/prefix                          AWS, its region from AWS_REGION (us-east-1 by default)
 */
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand,
  S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { errors } from '../errors.js';
import { checkObjectName, partsOf, type Backend, type ByteRange, type ObjectInfo } from './backend.js';

export interface S3Location {
  /** Absent: AWS itself (virtual-host addressing). */
  endpoint?: string;
  bucket: string;
  /** '' or a folder inside the bucket, without slashes at either end. */
  prefix: string;
}

/** Objects above this go up in parts of PART_BYTES (S3 wants parts of at least 5 MiB, but the last). */
const MULTIPART_ABOVE = 16 * 1024 * 1024;
const PART_BYTES = 8 * 1024 * 1024;

/** Every upload carries its MD5, which the server checks: what lands is what was sent. */
const md5 = (data: Uint8Array): string => createHash('md5').update(data).digest('base64');

export const isS3Location = (repo: string): boolean => repo.startsWith('s3:');

export function parseS3Location(repo: string): S3Location {
  const rest = repo.slice('s3:'.length);
  const url = /^(https?:\/\/[^/]+)\/(.*)$/.exec(rest);
  const endpoint = url?.[1];
  const [bucket = '', ...folders] = (url ? url[2]! : rest.replace(/^s3\.amazonaws\.com\//, '')).split('/').filter(Boolean);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw errors.usage(`"${repo}" names no valid bucket: write s3:http://host:port/bucket/prefix, s3:https://host/bucket/prefix or s3:bucket/prefix`);
  }
  return { ...(endpoint ? { endpoint } : {}), bucket, prefix: folders.join('/') };
}

/** What an S3 error means to a user. */
function mapError(e: unknown, op: string, what: string, location: string): Error {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
  const code = err.name ?? err.Code ?? '';
  const status = err.$metadata?.httpStatusCode;
  if (code === 'NoSuchKey' || code === 'NotFound' || (status === 404 && code !== 'NoSuchBucket')) {
    return errors.notFound(`object ${what} does not exist in ${location}`, { cause: e });
  }
  if (code === 'NoSuchBucket') return errors.notARepository(`the bucket of ${location} does not exist: create the repository with \`strata init\``, { cause: e });
  if (code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
    return errors.backend(`${location} refused the credentials (${code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`, { cause: e });
  }
  if (code === 'AccessDenied' || status === 403) return errors.backend(`${location} denied access to ${what} (${op}): the credentials lack the permission`, { cause: e });
  return errors.backend(`${op} ${what} in ${location} failed: ${err.message || code || `HTTP ${status}`}`, { cause: e });
}

export class S3Backend implements Backend {
  readonly location: string;
  private readonly client: S3Client;
  private readonly base: string;

  constructor(private readonly where: S3Location, client?: S3Client) {
    this.location = `s3:${where.endpoint ? `${where.endpoint}/` : ''}${where.bucket}${where.prefix ? `/${where.prefix}` : ''}`;
    this.base = where.prefix ? `${where.prefix}/` : '';
    this.client = client ?? new S3Client({
      region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(where.endpoint ? { endpoint: where.endpoint, forcePathStyle: true } : {}),
      maxAttempts: 5,
      // Streaming checksums that some S3 servers (Ceph's gateway among them) do not take: only where the API requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private key(name: string): string {
    checkObjectName(name);
    return this.base + name;
  }

  private async call<T>(op: string, what: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (e) {
      throw mapError(e, op, what, this.location);
    }
  }

  /** Creates the bucket when it does not exist (init). */
  async create(): Promise<void> {
    const Bucket = this.where.bucket;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }));
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 404) throw mapError(e, 'open', `bucket ${Bucket}`, this.location);
      await this.call('create', `bucket ${Bucket}`, () => this.client.send(new CreateBucketCommand({ Bucket })));
    }
  }

  async save(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const Key = this.key(name);
    const Bucket = this.where.bucket;
    const parts = partsOf(data);
    const size = parts.reduce((n, p) => n + p.length, 0);
    if (size <= MULTIPART_ABOVE) {
      const Body = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
      await this.call('save', name, () => this.client.send(new PutObjectCommand({ Bucket, Key, Body, ContentLength: size, ContentMD5: md5(Body) })));
      return;
    }
    const whole = parts.length === 1 ? Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, size) : Buffer.concat(parts, size);
    const { UploadId } = await this.call('save', name, () => this.client.send(new CreateMultipartUploadCommand({ Bucket, Key })));
    try {
      const done: { ETag?: string; PartNumber: number }[] = [];
      for (let offset = 0, n = 1; offset < size; offset += PART_BYTES, n++) {
        const Body = whole.subarray(offset, Math.min(size, offset + PART_BYTES));
        const { ETag } = await this.call('save', name, () => this.client.send(new UploadPartCommand({
          Bucket, Key, UploadId, PartNumber: n, Body, ContentLength: Body.length, ContentMD5: md5(Body),
        })));
        done.push({ ETag, PartNumber: n });
      }
      await this.call('save', name, () => this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: done } })));
    } catch (e) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => {});
      throw e;
    }
  }

  async load(name: string, range?: ByteRange): Promise<Buffer> {
    const Key = this.key(name);
    if (range && range.length <= 0) return Buffer.alloc(0);
    const Range = range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.where.bucket, Key, Range }));
      const bytes = await res.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (e) {
      // A range that starts past the end: nothing of it exists (the contract cuts ranges to what exists).
      if (range && (e as { name?: string }).name === 'InvalidRange') return Buffer.alloc(0);
      throw mapError(e, 'load', name, this.location);
    }
  }

  async stat(name: string): Promise<ObjectInfo> {
    const Key = this.key(name);
    const head = await this.call('stat', name, () => this.client.send(new HeadObjectCommand({ Bucket: this.where.bucket, Key })));
    return { name, size: head.ContentLength ?? 0 };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.call('list', `${prefix}…`, () => this.client.send(new ListObjectsV2Command({
        Bucket: this.where.bucket, Prefix: this.base + prefix, ContinuationToken,
      })));
      for (const o of page.Contents ?? []) if (o.Key) yield { name: o.Key.slice(this.base.length), size: o.Size ?? 0 };
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async remove(name: string): Promise<void> {
    const Key = this.key(name);
    await this.call('remove', name, () => this.client.send(new DeleteObjectCommand({ Bucket: this.where.bucket, Key })));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
