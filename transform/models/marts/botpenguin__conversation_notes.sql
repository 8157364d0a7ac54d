with elements as (
    {{ botpenguin_array_elements(ref('int_botpenguin__conversations'), 'conversation_id', 'notes') }}
)

select
    -- A note the API sent without an id gets one from its conversation and position.
    coalesce(
        {{ botpenguin_element_text('element', '_id') }},
        conversation_id || ':' || cast(position as {{ dbt.type_string() }})
    ) as note_id,
    conversation_id,
    {{ botpenguin_element_text('element', 'title') }} as title,
    {{ botpenguin_element_text('element', 'description') }} as description
from elements
