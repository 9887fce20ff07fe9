import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AllocateRequest,
  AllocateResponse,
  DevicePluginClient,
  DevicePluginServer,
  DevicePluginService,
  Empty,
  ListAndWatchResponse,
  RegistrationClient,
  RegistrationService,
  RegisterRequest,
} from '../../proto/gen/deviceplugin_v1beta1.js';

const dir = mkdtempSync(join(tmpdir(), 'vdpa-grpc-'));

function listen(server: grpc.Server, socket: string): Promise<void> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
}

test('generated DevicePlugin service round-trips Allocate and ListAndWatch over a unix socket', async () => {
  const impl: DevicePluginServer = {
    getDevicePluginOptions: (_call, cb) => cb(null, { preStartRequired: false, getPreferredAllocationAvailable: true }),
    listAndWatch: (call) => {
      call.write({ devices: [{ ID: '0000:65:00.2', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } }] });
      call.end();
    },
    getPreferredAllocation: (_call, cb) => cb(null, { containerResponses: [] }),
    allocate: (call, cb) =>
      cb(null, {
        containerResponses: call.request.containerRequests.map((c) => ({
          envs: { IDS: c.devicesIds.join(',') },
          mounts: [],
          devices: [{ containerPath: '/dev/vhost-vdpa-0', hostPath: '/dev/vhost-vdpa-0', permissions: 'rw' }],
          annotations: {},
          cdiDevices: [],
        })),
      }),
    preStartContainer: (_call, cb) => cb(null, {}),
  };
  const server = new grpc.Server();
  server.addService(DevicePluginService, impl);
  const socket = join(dir, 'plugin.sock');
  await listen(server, socket);
  const client = new DevicePluginClient(`unix://${socket}`, grpc.credentials.createInsecure());
  try {
    const opts = await new Promise<unknown>((res, rej) => client.getDevicePluginOptions({}, (e, r) => (e ? rej(e) : res(r))));
    assert.equal(opts, { preStartRequired: false, getPreferredAllocationAvailable: true });

    const req: AllocateRequest = { containerRequests: [{ devicesIds: ['0000:65:00.2', '0000:65:00.3'] }] };
    const resp = await new Promise<AllocateResponse>((res, rej) => client.allocate(req, (e, r) => (e ? rej(e) : res(r))));
    assert.is(resp.containerResponses.length, 1);
    assert.is(resp.containerResponses[0]!.envs.IDS, '0000:65:00.2,0000:65:00.3');
    assert.equal(resp.containerResponses[0]!.devices[0], {
      containerPath: '/dev/vhost-vdpa-0',
      hostPath: '/dev/vhost-vdpa-0',
      permissions: 'rw',
    });

    const seen: ListAndWatchResponse[] = [];
    await new Promise<void>((res, rej) => {
      const stream = client.listAndWatch(Empty.fromPartial({}));
      stream.on('data', (m: ListAndWatchResponse) => seen.push(m));
      stream.on('end', res);
      stream.on('error', rej);
    });
    assert.is(seen.length, 1);
    assert.equal(seen[0]!.devices[0], { ID: '0000:65:00.2', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } });
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test('wire encoding keeps the kubelet field numbers (devices_ids = 1, resource_name = 3)', () => {
  const bytes = RegisterRequest.encode({ version: 'v1beta1', endpoint: 'x.sock', resourceName: 'a/b', options: undefined }).finish();
  // field 1 (tag 0x0a) "v1beta1", field 2 (0x12) "x.sock", field 3 (0x1a) "a/b"
  assert.equal(Array.from(bytes.slice(0, 2)), [0x0a, 7]);
  assert.ok(bytes.includes(0x1a));
  const alloc = AllocateRequest.encode({ containerRequests: [{ devicesIds: ['d'] }] }).finish();
  assert.equal(Array.from(alloc), [0x0a, 3, 0x0a, 1, 0x64]);
});

test('Registration service is served and called under /v1beta1.Registration/Register', async () => {
  assert.is(RegistrationService.register.path, '/v1beta1.Registration/Register');
  const got: RegisterRequest[] = [];
  const server = new grpc.Server();
  server.addService(RegistrationService, {
    register: (call: grpc.ServerUnaryCall<RegisterRequest, Empty>, cb: grpc.sendUnaryData<Empty>) => {
      got.push(call.request);
      cb(null, {});
    },
  });
  const socket = join(dir, 'kubelet.sock');
  await listen(server, socket);
  const client = new RegistrationClient(`unix://${socket}`, grpc.credentials.createInsecure());
  try {
    await new Promise((res, rej) =>
      client.register(
        { version: 'v1beta1', endpoint: 'vdpa.sock', resourceName: 'example.com/vdpa', options: { preStartRequired: false, getPreferredAllocationAvailable: true } },
        (e, r) => (e ? rej(e) : res(r)),
      ),
    );
    assert.equal(got, [
      { version: 'v1beta1', endpoint: 'vdpa.sock', resourceName: 'example.com/vdpa', options: { preStartRequired: false, getPreferredAllocationAvailable: true } },
    ]);
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
