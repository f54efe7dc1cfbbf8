import { UemlinkError } from '../../common/errors.js';

/** A refusal of the integrations service that the API answers with `status` and `{"error": apiCode}`. */
export class ApiProblem extends UemlinkError {
  constructor(
    readonly status: number,
    readonly apiCode: string,
    message: string,
  ) {
    super('INVALID_INPUT', message);
  }
}
