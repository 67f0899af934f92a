// Built-in type OIDs (src/include/catalog/pg_type.dat). Extension types (citext, hstore…) have
// per-database OIDs and are passed through as text.

/** The built-in scalar types the value layer has a rule for, by type name (`pg_type.typname`). */
export const TypeOid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  unknown: 705,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/**
 * Every built-in array type of Postgres 15 as [array OID, array type name, element OID]: each becomes a
 * JSON array of its elements' values (elements of types without a rule keep their text). The catalog's
 * own row types and `int2vector`/`oidvector` (space-separated, not array literals) are left out.
 */
const BUILTIN_ARRAYS: readonly (readonly [number, string, number])[] = [
  [143, '_xml', 142],
  [199, '_json', 114],
  [271, '_xid8', 5069],
  [629, '_line', 628],
  [651, '_cidr', 650],
  [719, '_circle', 718],
  [775, '_macaddr8', 774],
  [791, '_money', 790],
  [1000, '_bool', 16],
  [1001, '_bytea', 17],
  [1002, '_char', 18],
  [1003, '_name', 19],
  [1005, '_int2', 21],
  [1006, '_int2vector', 22],
  [1007, '_int4', 23],
  [1008, '_regproc', 24],
  [1009, '_text', 25],
  [1010, '_tid', 27],
  [1011, '_xid', 28],
  [1012, '_cid', 29],
  [1013, '_oidvector', 30],
  [1014, '_bpchar', 1042],
  [1015, '_varchar', 1043],
  [1016, '_int8', 20],
  [1017, '_point', 600],
  [1018, '_lseg', 601],
  [1019, '_path', 602],
  [1020, '_box', 603],
  [1021, '_float4', 700],
  [1022, '_float8', 701],
  [1027, '_polygon', 604],
  [1028, '_oid', 26],
  [1034, '_aclitem', 1033],
  [1040, '_macaddr', 829],
  [1041, '_inet', 869],
  [1115, '_timestamp', 1114],
  [1182, '_date', 1082],
  [1183, '_time', 1083],
  [1185, '_timestamptz', 1184],
  [1187, '_interval', 1186],
  [1231, '_numeric', 1700],
  [1270, '_timetz', 1266],
  [1561, '_bit', 1560],
  [1563, '_varbit', 1562],
  [2201, '_refcursor', 1790],
  [2207, '_regprocedure', 2202],
  [2208, '_regoper', 2203],
  [2209, '_regoperator', 2204],
  [2210, '_regclass', 2205],
  [2211, '_regtype', 2206],
  [2949, '_txid_snapshot', 2970],
  [2951, '_uuid', 2950],
  [3221, '_pg_lsn', 3220],
  [3643, '_tsvector', 3614],
  [3644, '_gtsvector', 3642],
  [3645, '_tsquery', 3615],
  [3735, '_regconfig', 3734],
  [3770, '_regdictionary', 3769],
  [3807, '_jsonb', 3802],
  [3905, '_int4range', 3904],
  [3907, '_numrange', 3906],
  [3909, '_tsrange', 3908],
  [3911, '_tstzrange', 3910],
  [3913, '_daterange', 3912],
  [3927, '_int8range', 3926],
  [4073, '_jsonpath', 4072],
  [4090, '_regnamespace', 4089],
  [4097, '_regrole', 4096],
  [4192, '_regcollation', 4191],
  [5039, '_pg_snapshot', 5038],
  [6150, '_int4multirange', 4451],
  [6151, '_nummultirange', 4532],
  [6152, '_tsmultirange', 4533],
  [6153, '_tstzmultirange', 4534],
  [6155, '_datemultirange', 4535],
  [6157, '_int8multirange', 4536],
];

/** Array type OID → element type OID, for every built-in array type. */
export const ARRAY_ELEMENT_OIDS: ReadonlyMap<number, number> = new Map(
  BUILTIN_ARRAYS.map(([array, , element]) => [array, element]),
);

/** `pg_type.typdelim` where it is not a comma: box elements contain commas. */
export const ARRAY_DELIMITERS: ReadonlyMap<number, string> = new Map([[1020, ';']]);

const OID_BY_NAME: ReadonlyMap<string, number> = new Map<string, number>([
  ...Object.entries(TypeOid),
  ...BUILTIN_ARRAYS.map(([array, name]) => [name, array] as [string, number]),
]);

/**
 * The OID of a built-in type the value layer has a rule for, by the schema and name a Type message
 * carries (pgoutput sends pg_catalog as the empty schema); undefined for any other type.
 *
 * For a domain column pgoutput sends the domain's OID in the Relation message and, in the Type message
 * before it, the domain's base type's schema and name: this resolves the column to its base type.
 */
export function builtinTypeOid(schema: string, name: string): number | undefined {
  return schema === '' || schema === 'pg_catalog' ? OID_BY_NAME.get(name) : undefined;
}
