/** The backend a repository location names: a folder, or S3 (`s3:http://host:port/bucket/prefix`, `s3:bucket/prefix`). */
import path from 'node:path';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';
import { isS3Location, parseS3Location, S3Backend } from './s3.js';

export function backendAt(location: string): Backend {
  return isS3Location(location) ? new S3Backend(parseS3Location(location)) : new LocalBackend(path.resolve(location));
}
