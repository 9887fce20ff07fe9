/**
 * Readers that turn `unknown` JSON into typed values. Every failure names the field by its path
 * (`ovn.timeout`, `prevResult.ips[1].address`) and becomes a CNI error with the caller's code.
 */
import { CniError, ErrorCode } from './errors.js';

export type Obj = Readonly<Record<string, unknown>>;

export class Decoder {
  constructor(readonly code: number = ErrorCode.InvalidConfig) {}

  fail(path: string, msg: string): never {
    throw new CniError(this.code, `${path}: ${msg}`);
  }

  object(v: unknown, path: string): Obj {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'must be an object');
    return v as Obj;
  }

  optObject(o: Obj, key: string, path: string): Obj | undefined {
    return o[key] === undefined ? undefined : this.object(o[key], join(path, key));
  }

  array(v: unknown, path: string): readonly unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'must be an array');
    return v;
  }

  optArray(o: Obj, key: string, path: string): readonly unknown[] {
    return o[key] === undefined || o[key] === null ? [] : this.array(o[key], join(path, key));
  }

  string(o: Obj, key: string, path: string): string {
    const v = o[key];
    if (v === undefined) this.fail(join(path, key), 'is required');
    if (typeof v !== 'string') this.fail(join(path, key), 'must be a string');
    return v;
  }

  optString(o: Obj, key: string, path: string): string | undefined {
    return o[key] === undefined ? undefined : this.string(o, key, path);
  }

  optInt(o: Obj, key: string, path: string, min: number, max: number): number | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(join(path, key), `must be an integer from ${min} to ${max}`);
    }
    return v;
  }

  optBool(o: Obj, key: string, path: string): boolean | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(join(path, key), 'must be true or false');
    return v;
  }

  stringList(o: Obj, key: string, path: string): string[] {
    return this.optArray(o, key, path).map((v, i) => {
      if (typeof v !== 'string') this.fail(`${join(path, key)}[${i}]`, 'must be a string');
      return v;
    });
  }
}

export const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);
