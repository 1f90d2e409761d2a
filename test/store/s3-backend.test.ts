/**
 * The S3 backend against a real Ceph RADOS Gateway on loopback: the shared
 * backend suite, large objects in parts, a bucket made by init, and the errors a
 * user meets (wrong keys, a missing bucket).
 */
import { S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { parseS3Location, S3Backend } from '../../src/store/backend/s3.js';
import { startCeph } from '../kit/ceph.js';
import { Random } from '../kit/random.js';
import { backendSuite } from './backend-suite.js';

t.test('S3 locations in the forms restic users write', async (t) => {
  t.same(parseS3Location('s3:http://127.0.0.1:7480/bucket/some/prefix'), { endpoint: 'http://127.0.0.1:7480', bucket: 'bucket', prefix: 'some/prefix' });
  t.same(parseS3Location('s3:https://s3.example.com/bucket'), { endpoint: 'https://s3.example.com', bucket: 'bucket', prefix: '' });
  t.same(parseS3Location('s3:bucket/prefix/'), { bucket: 'bucket', prefix: 'prefix' });
  t.same(parseS3Location('s3:s3.amazonaws.com/bucket/p'), { bucket: 'bucket', prefix: 'p' });
  t.throws(() => parseS3Location('s3:http://127.0.0.1:7480/'), { code: 'USAGE', message: /names no valid bucket/ });
});

t.test('against a real Ceph RADOS Gateway', async (t) => {
  const ceph = await startCeph(t);
  if (!ceph) return;
  Object.assign(process.env, ceph.env);
  let n = 0;
  const fresh = async (): Promise<S3Backend> => {
    const b = new S3Backend(parseS3Location(`s3:${ceph.endpoint}/suite-${n++}/repo`));
    await b.create();
    return b;
  };
  t.test('the shared backend suite', async (t) => backendSuite(t, async (t) => {
    const b = await fresh();
    t.teardown(() => b.close());
    return b;
  }));

  t.test('a large object goes up in parts and reads back whole and by range', async (t) => {
    const b = await fresh();
    t.teardown(() => b.close());
    const data = Buffer.from(new Random(3).bytes(20 * 1024 * 1024 + 17));
    await b.save('packs/aa/big', [data.subarray(0, 1000), data.subarray(1000)]);
    t.equal((await b.stat('packs/aa/big')).size, data.length);
    t.ok((await b.load('packs/aa/big')).equals(data));
    t.ok((await b.load('packs/aa/big', { offset: 12_000_000, length: 100 })).equals(data.subarray(12_000_000, 12_000_100)));
  });

  t.test('wrong keys and a missing bucket get clear errors', async (t) => {
    const wrong = new S3Backend(parseS3Location(`s3:${ceph.endpoint}/suite-0/repo`), { client: new S3Client({
      region: 'us-east-1', endpoint: ceph.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'WRONGKEY', secretAccessKey: 'wrong-secret' },
    }) });
    t.teardown(() => wrong.close());
    await t.rejects(wrong.load('config'), { code: 'BACKEND', message: /refused the credentials \(InvalidAccessKeyId\)/ });
    const missing = new S3Backend(parseS3Location(`s3:${ceph.endpoint}/no-such-bucket/repo`));
    t.teardown(() => missing.close());
    await t.rejects(missing.load('config'), { code: 'NOT_A_REPOSITORY', message: /bucket .* does not exist/ });
  });
});
