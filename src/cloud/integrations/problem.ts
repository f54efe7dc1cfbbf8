import type { ApiErrorCode } from '../../common/api-codes.js';
import { ApiError } from '../http-errors.js';

/**
 * A refusal of the integrations service, answered with `status` and `{"error": code}`. An ApiError,
 * so that no path can answer it as anything else (as a UemlinkError it carried INVALID_INPUT, which
 * the API's error handler would have turned into 400 bad_request, whatever its status).
 */
export class ApiProblem extends ApiError {
  constructor(status: number, code: ApiErrorCode, message: string) {
    super(status, code, message);
  }

  /** The code, under the name the console reads. */
  get apiCode(): ApiErrorCode {
    return this.code;
  }
}
