<?php

namespace App\Jobs;

use Illuminate\Bus\Batchable;

/** Work that belongs to a batch (its serialized command carries the batch id). */
class BatchedWork extends Work
{
    use Batchable;
}
