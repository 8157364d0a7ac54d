with elements as (
    {{ botpenguin_array_elements(ref('int_botpenguin__conversations'), 'conversation_id', 'attributes') }}
),

attributes as (
    select
        conversation_id,
        position,
        {{ botpenguin_element_text('element', 'key') }} as attribute_key,
        {{ botpenguin_element_text('element', 'value') }} as value_text,
        {{ botpenguin_element_type('element', 'value') }} as value_type
    from elements
),

last_per_key as (
    -- A key listed twice keeps its last value, as a form re-submitted would.
    select
        *,
        row_number() over (partition by conversation_id, attribute_key order by position desc) as key_rank
    from attributes
)

select
    last_per_key.conversation_id,
    conversations.bot_id,
    last_per_key.attribute_key,
    last_per_key.value_text,
    last_per_key.value_type,
    case when last_per_key.value_type = 'number' then cast(last_per_key.value_text as {{ dbt.type_float() }}) end as value_number,
    case when last_per_key.value_type = 'boolean' then last_per_key.value_text = 'true' end as value_boolean
from last_per_key
inner join {{ ref('int_botpenguin__conversations') }} as conversations
    on last_per_key.conversation_id = conversations.conversation_id
where last_per_key.key_rank = 1
