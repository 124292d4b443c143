import { Format } from 'typebox/format';

/**
 * String formats used by the schemas; registered on import. `date-time` takes what
 * Date.parse takes in ISO 8601 form, seconds optional (TypeBox's own wants them).
 */
Format.Set(
  'date-time',
  (v) =>
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v) &&
    !Number.isNaN(Date.parse(v)),
);
