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
  DeleteObjectCommand, GetObjectCommand, GetObjectLockConfigurationCommand, HeadBucketCommand, HeadObjectCommand,
  ListObjectsV2Command, PutObjectCommand, PutObjectRetentionCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { errors, isStrataError } from '../errors.js';
import { checkObjectName, partsOf, type Backend, type ByteRange, type ObjectInfo } from './backend.js';

/** S3 Object Lock for every object written: GOVERNANCE (lifted only by a user allowed to bypass it) or COMPLIANCE (by nobody). */
export interface ObjectLock {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  days: number;
}

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

/** `governance:30` or `compliance:365` (mode and days), as `--object-lock` takes it. */
export function parseObjectLock(text: string): ObjectLock {
  const m = /^(governance|compliance):([1-9]\d{0,4})$/i.exec(text.trim());
  if (!m) throw errors.usage(`--object-lock takes <governance|compliance>:<days>, such as governance:30, not "${text}"`);
  return { mode: m[1]!.toUpperCase() as ObjectLock['mode'], days: Number(m[2]) };
}

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
  const network = (err as { code?: string }).code ?? '';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN'].includes(network)) {
    return errors.backend(`cannot reach ${location} (${network}) to ${op} ${what}: check the endpoint, the network and that the server runs`, { cause: e });
  }
  if (code === 'AccessDenied' || status === 403) return errors.backend(`${location} denied access to ${what} (${op}): the credentials lack the permission`, { cause: e });
  return errors.backend(`${op} ${what} in ${location} failed: ${err.message || code || `HTTP ${status}`}`, { cause: e });
}

/** Objects that come and go with the processes that hold them (lock files) are never locked. */
const lockable = (name: string): boolean => !name.startsWith('locks/');

const DAY_MS = 86_400_000;

export class S3Backend implements Backend {
  readonly location: string;
  readonly protection?: Backend['protection'];
  private readonly client: S3Client;
  private readonly base: string;
  private readonly objectLock?: ObjectLock;

  constructor(private readonly where: S3Location, opts: { objectLock?: ObjectLock; client?: S3Client } = {}) {
    const { objectLock, client } = opts;
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
    if (objectLock) this.protection = { lockDays: objectLock.days, renew: () => this.renewLocks(objectLock) };
    this.objectLock = objectLock;
  }

  /** The lock headers of an object written now (none for lock files, or without Object Lock). */
  private lockOf(name: string): { ObjectLockMode?: ObjectLock['mode']; ObjectLockRetainUntilDate?: Date } {
    if (!this.objectLock || !lockable(name)) return {};
    return { ObjectLockMode: this.objectLock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + this.objectLock.days * DAY_MS) };
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

  /** Creates the bucket when it does not exist (init), with Object Lock when that is asked for; an existing one must then have it. */
  async create(): Promise<void> {
    const Bucket = this.where.bucket;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }));
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 404) throw mapError(e, 'open', `bucket ${Bucket}`, this.location);
      await this.call('create', `bucket ${Bucket}`, () => this.client.send(new CreateBucketCommand({ Bucket, ...(this.objectLock ? { ObjectLockEnabledForBucket: true } : {}) })));
      return;
    }
    if (this.objectLock) {
      const enabled = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket }))
        .then((r) => r.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled', (e: { name?: string }) => {
          if (e.name === 'ObjectLockConfigurationNotFoundError') return false;
          throw mapError(e, 'open', `bucket ${Bucket}`, this.location);
        });
      if (!enabled) {
        throw errors.usage(`the bucket ${Bucket} of ${this.location} was not created with Object Lock, which cannot be turned on later: ` +
          'name a bucket that does not exist yet (Strata creates it with Object Lock) or one made with it');
      }
    }
  }

  /** Extends the lock of every object to `days` from now (a lock can be extended, never shortened); returns how many. */
  private async renewLocks(lock: ObjectLock): Promise<number> {
    const Retention = { Mode: lock.mode, RetainUntilDate: new Date(Date.now() + lock.days * DAY_MS) };
    let renewed = 0;
    for await (const { name } of this.list('')) {
      if (!lockable(name)) continue;
      const Key = this.key(name);
      await this.call('lock', name, () => this.client.send(new PutObjectRetentionCommand({ Bucket: this.where.bucket, Key, Retention })));
      renewed++;
    }
    return renewed;
  }

  async save(name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const Key = this.key(name);
    const Bucket = this.where.bucket;
    const parts = partsOf(data);
    const size = parts.reduce((n, p) => n + p.length, 0);
    if (size <= MULTIPART_ABOVE) {
      const Body = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
      await this.call('save', name, () => this.client.send(new PutObjectCommand({ Bucket, Key, Body, ContentLength: size, ContentMD5: md5(Body), ...this.lockOf(name) })));
      return;
    }
    const whole = parts.length === 1 ? Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, size) : Buffer.concat(parts, size);
    const { UploadId } = await this.call('save', name, () => this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, ...this.lockOf(name) })));
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
    const Bucket = this.where.bucket;
    let head;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket, Key }));
    } catch (e) {
      const mapped = mapError(e, 'remove', name, this.location);
      if (isStrataError(mapped, 'NOT_FOUND')) return;
      throw mapped;
    }
    const until = head.ObjectLockRetainUntilDate;
    if (until && until.getTime() > Date.now()) {
      throw errors.backend(`${name} in ${this.location} is under Object Lock (${head.ObjectLockMode}) until ${until.toISOString()}: it is not removed`);
    }
    // In a versioned bucket (every bucket with Object Lock) the version itself goes, not only its name.
    const VersionId = head.VersionId && head.VersionId !== 'null' ? head.VersionId : undefined;
    await this.call('remove', name, () => this.client.send(new DeleteObjectCommand({ Bucket, Key, VersionId })));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
