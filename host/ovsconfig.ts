/** Node-wide OVS settings: keys of `Open_vSwitch . other_config` (hw-offload, tc-policy). */
import { ovsMap, ovsSet, stringMap, type Mutation, type OvsdbClient } from './ovsdb.js';

const DB = 'Open_vSwitch';

/** The key's value, or null when it is not set. */
export async function otherConfig(client: OvsdbClient, key: string): Promise<string | null> {
  const [{ rows }] = await client.transact(DB, [{ op: 'select', table: DB, where: [], columns: ['other_config'] }]);
  if (rows.length !== 1) throw new Error(`OVSDB ${client.remote}: expected one Open_vSwitch row, found ${rows.length}`);
  return stringMap(rows[0]!.other_config)[key] ?? null;
}

/** Sets the key (null removes it) in one transaction. */
export async function setOtherConfig(client: OvsdbClient, key: string, value: string | null): Promise<void> {
  await client.transact(DB, [
    {
      op: 'mutate',
      table: DB,
      where: [],
      mutations: [['other_config', 'delete', ovsSet([key])], ...(value === null ? [] : [['other_config', 'insert', ovsMap({ [key]: value })] as Mutation])],
    },
  ]);
}
