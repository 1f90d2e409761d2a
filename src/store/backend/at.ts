/**
 * The backend a repository location names: a folder, or S3 (`s3:http://host:port/bucket/prefix`,
 * `s3:bucket/prefix`), trying again where the storage fails in a way that passes; for a second
 * copy, append-only or under S3 Object Lock (which is append-only too).
 */
import path from 'node:path';
import { errors } from '../errors.js';
import { appendOnly } from './append-only.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';
import { retrying } from './retry.js';
import { isS3Location, parseS3Location, S3Backend, type ObjectLock } from './s3.js';

export interface Safeguards {
  appendOnly?: boolean;
  objectLock?: ObjectLock;
}

export function backendAt(location: string, safeguards: Safeguards = {}): Backend {
  const { objectLock } = safeguards;
  if (objectLock && !isS3Location(location)) throw errors.usage(`Object Lock is for copies on S3 (s3:…); ${location} is a folder: it takes --append-only`);
  const backend = retrying(isS3Location(location) ? new S3Backend(parseS3Location(location), { objectLock }) : new LocalBackend(path.resolve(location)));
  return safeguards.appendOnly || objectLock ? appendOnly(backend) : backend;
}
